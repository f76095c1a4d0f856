"""Builds the FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy.exc import DataError, OperationalError
from temporalio.client import Client
from temporalio.service import RPCError

from aimatrix.settings import Settings, get_settings
from aimatrix.temporal import connect
from api.console import mount_console
from api.errors import SECURED
from api.routes import api_keys as api_keys_routes
from api.routes import audit as audit_routes
from api.routes import (
    definitions,
    deployments,
    health,
    incidents,
    instances,
    me,
    messages,
    models,
    signals,
    tasks,
    twin,
)
from api.state import AppState
from api.status_projector import StatusProjector
from store import api_keys
from store.db import make_engine, make_session_factory, migrate

log = logging.getLogger("aimatrix.api")

API_PREFIX = "/api/v1"
ADMIN_KEY_NAME = "admin"


def admin_key(settings: Settings) -> str:
    """The admin key: AIMATRIX_API_KEY, else the one stored in the data directory, else a new one."""
    if settings.api_key:
        return settings.api_key
    path = settings.data_dir / "api_key"
    if path.exists():
        return path.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = api_keys.generate()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def create_app(settings: Settings | None = None, temporal: Client | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.resolved_database_url)
        migrate(engine)
        session_factory = make_session_factory(engine)
        with session_factory.begin() as session:
            api_keys.ensure(session, name=ADMIN_KEY_NAME, key=admin_key(settings), subject="admin", roles="admin")
        client = temporal or await connect(settings)
        app.state.aimatrix = AppState(settings, engine, session_factory, client)
        projector = StatusProjector(client, session_factory, settings.status_sync_seconds)
        projecting = asyncio.create_task(projector.run(), name="instance status projector")
        try:
            yield
        finally:
            projecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await projecting
            engine.dispose()

    app = FastAPI(
        title="AIMatrix",
        summary="BPMN processes run durably on Temporal",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
    )
    app.include_router(health.router, prefix=API_PREFIX)
    # every other route needs credentials and a role, and reaches Temporal or the database
    secured = (
        deployments,
        definitions,
        instances,
        messages,
        signals,
        incidents,
        tasks,
        api_keys_routes,
        audit_routes,
        models,
        twin,
        me,
    )
    for module in secured:
        app.include_router(module.router, prefix=API_PREFIX, responses=SECURED)

    mount_console(app)  # the web console: static pages at /console/, calling the API with the user's key

    @app.get("/docs", include_in_schema=False)
    async def docs_redirect() -> RedirectResponse:
        return RedirectResponse(f"{API_PREFIX}/docs")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer echoes the offending input: that can be megabytes, or a value (infinity)
        # that JSON cannot carry, which turned a 422 into a 500. Where and what is enough.
        errors = [
            {"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(RPCError)
    async def temporal_unavailable(request: Request, exc: RPCError) -> JSONResponse:
        log.warning("Temporal call failed on %s %s: %s", request.method, request.url.path, exc.message)
        return JSONResponse({"detail": f"the workflow engine is unavailable: {exc.message}"}, status_code=503)

    @app.exception_handler(DataError)
    async def unstorable_value(request: Request, exc: DataError) -> JSONResponse:
        # e.g. a NUL character, which PostgreSQL text cannot hold: the request's fault, and nothing was stored
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "invalid value"
        return JSONResponse({"detail": f"a value in the request cannot be stored: {reason}"}, status_code=422)

    @app.exception_handler(OperationalError)
    async def database_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database call failed on %s %s: %s", request.method, request.url.path, exc.orig)
        return JSONResponse({"detail": "the database is unavailable"}, status_code=503)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never a stack trace to the caller; the id lets an operator find it in the log.
        error_id = uuid.uuid4().hex[:12]
        log.exception("unhandled error %s on %s %s", error_id, request.method, request.url.path)
        return JSONResponse({"detail": f"internal error (id {error_id})"}, status_code=500)

    return app
