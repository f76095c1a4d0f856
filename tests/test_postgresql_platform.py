"""The whole platform on PostgreSQL: API, engine worker and inbox projection share one database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from temporalio.client import Client

from aimatrix.settings import Settings
from api.main import create_app
from store.db import make_engine, make_session_factory, migrate
from tests.conftest import API_KEY, POSTGRES_URL, postgres_schema, schema_url
from tests.helpers import EXAMPLES, api_client, deploy, http_server, start, wait_for, wait_for_tasks
from workers.engine import build_worker


@pytest.fixture
async def pg(
    request: pytest.FixtureRequest, client: Client, workers: None, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    # explicitly PostgreSQL, whichever database the rest of the suite runs on
    schema = postgres_schema(request)  # dropped by a finalizer, whatever happens below
    url = schema_url(schema)
    queue = f"engine-pg-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        AIMATRIX_DATA_DIR=tmp_path, DATABASE_URL=url, AIMATRIX_API_KEY=API_KEY, AIMATRIX_ENGINE_TASK_QUEUE=queue
    )
    engine = make_engine(url)
    try:
        migrate(engine)
        app = create_app(settings, temporal=client)
        async with (
            build_worker(client, make_session_factory(engine), task_queue=queue),
            app.router.lifespan_context(app),
            api_client(app, API_KEY) as http,
        ):
            yield http, schema
    finally:
        engine.dispose()


async def test_order_approval_on_postgresql(pg: tuple[httpx.AsyncClient, str]) -> None:
    pg_api, schema = pg
    assert (await pg_api.get("/health")).json()["database"] == "ok"
    first = await deploy(pg_api, EXAMPLES / "order_approval.bpmn", expect=201)
    assert first.json()["definitions"][0]["version"] == 1
    await deploy(pg_api, EXAMPLES / "order_approval.bpmn", expect=200)
    with http_server() as (url, requests):
        instance = await start(pg_api, "order_approval", {"price": 70, "quantity": 3, "notify_url": url})
        [task] = await wait_for_tasks(pg_api, instance)
        assert task["element_id"] == "approve"
        response = await pg_api.post(f"/tasks/{task['id']}/complete", json={"variables": {"approved": True}})
        assert response.status_code == 200, response.text
        final = await wait_for(pg_api, instance, "completed")
    assert final["variables"]["total"] == 210
    assert len(requests) == 1
    assert (await pg_api.get("/tasks", params={"instance_id": instance})).json() == []
    # the rows really are in PostgreSQL, in this test's schema
    check = create_engine(POSTGRES_URL)
    with check.connect() as connection:
        states = connection.execute(text(f'SELECT state, closed_by FROM "{schema}".human_tasks')).all()
        keys = connection.execute(text(f'SELECT key, version FROM "{schema}".definitions')).all()
    check.dispose()
    assert [tuple(row) for row in states] == [("completed", "admin")]
    assert [tuple(row) for row in keys] == [("order_approval", 1)]
