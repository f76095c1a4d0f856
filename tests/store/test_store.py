"""The store on both engines it supports: SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from store import definitions, tasks
from store.db import make_engine, make_session_factory, migrate
from tests.conftest import POSTGRES_URL, postgres_schema
from workflows.contracts import ClosedTask, OpenTask, SyncTasksInput


@pytest.fixture(params=["sqlite", "postgresql"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
        migrate(engine)
        yield make_session_factory(engine)
        engine.dispose()
        return
    # A schema of its own per test (dropped by a finalizer): the shared `test` database stays clean and
    # runs can overlap.
    schema = postgres_schema(request)
    engine = create_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        migrate(engine)
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def test_versions_and_content_hash(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        first = definitions.deploy(session, key="p", name="P", files={"p.bpmn": "<a/>"}, digest="h1", deployed_by="u")
        same = definitions.deploy(session, key="p", name="P", files={"p.bpmn": "<a/>"}, digest="h1", deployed_by="u")
        second = definitions.deploy(
            session,
            key="p",
            name="P",
            files={"p.bpmn": "<b/>", "d.dmn": "<d/>"},
            digest="h2",
            deployed_by="u",
        )
    assert (first.version, first.created) == (1, True)
    assert (same.version, same.created) == (1, False)
    assert (second.version, second.created) == (2, True)
    with factory() as session:
        assert [d.version for d in definitions.versions(session, key="p")] == [1, 2]
        assert definitions.get(session, key="p").version == 2  # type: ignore[union-attr]
        assert list(definitions.files(session, key="p", version=2)) == ["p.bpmn", "d.dmn"]
        assert [d.key for d in definitions.list_latest(session)] == ["p"]


def test_concurrent_deploys_get_distinct_versions(factory: sessionmaker[Session]) -> None:
    def deploy(n: int) -> int:
        with factory.begin() as session:
            return definitions.deploy(
                session, key="race", name="R", files={"r.bpmn": f"<r{n}/>"}, digest=f"d{n}", deployed_by=None
            ).version

    with ThreadPoolExecutor(4) as pool:
        versions = sorted(pool.map(deploy, range(8)))
    assert versions == list(range(1, 9))


def test_task_projection_sync_is_idempotent(factory: sessionmaker[Session]) -> None:
    opened = OpenTask(id="t1", element_id="approve", name="Approve", created_at="2026-01-01T00:00:00+00:00")
    update = SyncTasksInput("i1", "p", 1, open_tasks=[opened], closed_tasks=[])
    for _ in range(2):  # an activity may run twice
        with factory.begin() as session:
            tasks.sync(session, update=update)
    with factory() as session:
        assert [t.id for t in tasks.list_open(session, instance_id="i1")] == ["t1"]
    closed = SyncTasksInput("i1", "p", 1, [], [ClosedTask("t1", "completed", "alice", "2026-01-02T00:00:00+00:00")])
    for _ in range(2):
        with factory.begin() as session:
            tasks.sync(session, update=closed)
    with factory() as session:
        assert tasks.list_open(session, instance_id="i1") == []
        row = tasks.get(session, task_id="t1")
        assert row is not None and row.state == "completed"
