"""The audit log is append-only and tamper-evident, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from store import audit
from store.db import make_engine, make_session_factory, migrate
from tests.conftest import POSTGRES_URL


@contextmanager
def fresh_schema() -> Iterator[str]:
    schema = f"amx_audit_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, sessionmaker[Session]]]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
        migrate(engine)
        yield engine, make_session_factory(engine)
        engine.dispose()
        return
    with fresh_schema() as schema:
        engine = create_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
        migrate(engine)
        yield engine, make_session_factory(engine)
        engine.dispose()


def _fill(factory: sessionmaker[Session], count: int = 6) -> None:
    with factory.begin() as session:
        audit.append(
            session,
            records=[
                audit.NewRecord(
                    action="element.completed", occurred_at=f"2026-01-01T00:00:0{n}+00:00", instance_id="i1",
                    instance_seq=n, actor="alice", element_id=f"task_{n}", data={"n": n},
                    tenant="acme" if n >= 4 else None,  # rows from before tenants existed, then a tenant's
                )
                for n in range(1, count + 1)
            ],
        )  # fmt: skip


def _tamper(engine: Engine, sql: str) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # what an attacker with the database owner's rights would do first
            connection.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        for statement in sql.split(";"):
            connection.execute(text(statement))
        if engine.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))


def test_appends_chain_and_verify(db: tuple[Engine, sessionmaker[Session]]) -> None:
    _, factory = db
    _fill(factory)
    with factory.begin() as session:  # the same entries again: stored once
        again = audit.append(session, records=[audit.NewRecord("element.completed", "x", "i1", 3)])
    assert again == 0
    with factory() as session:
        result = audit.verify(session)
        history = audit.instance_history(session, instance_id="i1")
    assert result.ok and result.checked == 6 and result.head_seq == 6, result.problems
    assert [h.element_id for h in history] == [f"task_{n}" for n in range(1, 7)]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("UPDATE audit_log SET data = '[99]' WHERE seq = 3", "row 3 was changed"),
        ("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1", "row 1 was changed"),
        ("DELETE FROM audit_log WHERE seq = 4", "rows 4..4 are missing"),
        ("DELETE FROM audit_log WHERE seq = 6", "rows were removed"),
        (
            # reorder: rows 2 and 3 trade places (their sequence numbers swapped, through a free value)
            "UPDATE audit_log SET seq = -2 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 3; "
            "UPDATE audit_log SET seq = 3 WHERE seq = -2",
            "does not follow",
        ),
        ("UPDATE audit_log SET tenant = 'globex' WHERE seq = 5", "row 5 was changed"),
        ("UPDATE audit_log SET tenant = 'acme' WHERE seq = 2", "row 2 was changed"),
    ],
    ids=["edit-data", "edit-actor", "delete-middle", "delete-tail", "reorder", "move-tenant", "claim-row"],
)
def test_tampering_is_detected(db: tuple[Engine, sessionmaker[Session]], sql: str, expected: str) -> None:
    engine, factory = db
    _fill(factory)
    _tamper(engine, sql)
    with factory() as session:
        result = audit.verify(session)
    assert not result.ok
    assert any(expected in problem for problem in result.problems), result.problems


def test_postgresql_refuses_update_and_delete_for_the_application_role(tmp_path: Path) -> None:
    with fresh_schema() as schema:
        engine = create_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
        try:
            migrate(engine)
            _fill(make_session_factory(engine))
            for sql in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
                with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
                    connection.execute(text(sql))
            with make_session_factory(engine)() as session:
                assert audit.verify(session).ok
        finally:
            engine.dispose()
