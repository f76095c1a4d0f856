from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.deps import StateDep
from api.errors import responses

router = APIRouter(tags=["health"])


@router.get("/health", responses=responses(503, e503="Temporal or the database does not answer; `detail` says which"))
async def health(state: StateDep) -> JSONResponse:
    """200 once Temporal and the database both answer; 503 naming what does not."""

    def ping_db() -> None:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    checks: dict[str, Any] = {}
    try:
        await run_in_threadpool(ping_db)
        checks["database"] = "ok"
    except Exception as err:
        checks["database"] = f"error: {type(err).__name__}"
    try:
        await asyncio.wait_for(state.temporal.service_client.check_health(), timeout=5)
        checks["temporal"] = "ok"
    except Exception as err:
        checks["temporal"] = f"error: {type(err).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if healthy else "unavailable", **checks}
    return JSONResponse(body, status_code=200 if healthy else 503)
