"""Data access for deployed definitions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.models import Definition, DefinitionFile, MessageStartEvent, SignalStartEvent
from store.tenancy import scoped


@dataclass(frozen=True)
class StoredDefinition:
    key: str
    version: int
    hash: str
    name: str
    main_file: str
    deployed_at: datetime
    created: bool  # False when the same content was already deployed
    tenant: str | None = None
    # its Camunda 8 `=` expressions are FEEL; False for versions deployed before FEEL was read,
    # whose `=` expressions were checked, and keep running, as Python
    feel: bool = True


class KeyTaken(Exception):
    """The process id is already deployed by another tenant: keys are global, and owned by one."""


def deploy(
    session: Session,
    *,
    key: str,
    name: str,
    files: dict[str, str],
    digest: str,
    deployed_by: str | None,
    message_starts: tuple[str, ...] = (),
    signal_starts: tuple[str, ...] = (),
    tenant: str | None = None,
) -> StoredDefinition:
    """Store a new version unless this exact content is already the key's latest version.

    Concurrent deploys of one key are serialised: on PostgreSQL by a transaction-scoped advisory
    lock on the key, on SQLite by its single writer. The (key, version) unique constraint is the
    backstop for any other engine: the loser retries against the winner's row.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
    for _ in range(5):
        latest = session.scalars(
            select(Definition).where(Definition.key == key).order_by(Definition.version.desc()).limit(1)
        ).first()
        if latest is not None and latest.tenant != tenant:
            raise KeyTaken(key)
        if latest is not None and latest.hash == digest and latest.feel:
            return _stored(latest, created=False)
        definition = Definition(
            key=key,
            version=(latest.version + 1) if latest else 1,
            hash=digest,
            name=name,
            main_file=next(iter(files)),
            deployed_at=datetime.now(UTC),
            deployed_by=deployed_by,
            tenant=tenant,
            feel=True,
        )
        try:
            with session.begin_nested():
                session.add(definition)
                session.flush()
                session.add_all(
                    DefinitionFile(definition_id=definition.id, file_name=file_name, content=content)
                    for file_name, content in files.items()
                )
                session.add_all(MessageStartEvent(definition_id=definition.id, message_name=m) for m in message_starts)
                session.add_all(SignalStartEvent(definition_id=definition.id, signal_name=s) for s in signal_starts)
                session.flush()
        except IntegrityError:
            continue
        return _stored(definition, created=True)
    raise RuntimeError(f"could not allocate a version for {key}")


def _stored(row: Definition, *, created: bool) -> StoredDefinition:
    return StoredDefinition(
        row.key, row.version, row.hash, row.name, row.main_file, row.deployed_at, created, row.tenant, row.feel
    )


def list_latest(session: Session, *, tenant: str | None = None) -> list[StoredDefinition]:
    latest = select(Definition.key, func.max(Definition.version).label("version")).group_by(Definition.key).subquery()
    query = select(Definition).join(latest, (Definition.key == latest.c.key) & (Definition.version == latest.c.version))
    rows = session.scalars(scoped(query, Definition.tenant, tenant).order_by(Definition.key))
    return [_stored(row, created=False) for row in rows]


def versions(session: Session, *, key: str, tenant: str | None = None) -> list[StoredDefinition]:
    query = scoped(select(Definition).where(Definition.key == key), Definition.tenant, tenant)
    return [_stored(row, created=False) for row in session.scalars(query.order_by(Definition.version))]


def get(
    session: Session, *, key: str, version: int | None = None, tenant: str | None = None
) -> StoredDefinition | None:
    """`tenant`: the caller's (None: every tenant's); another tenant's definition is not found."""
    query = scoped(select(Definition).where(Definition.key == key), Definition.tenant, tenant)
    query = query.where(Definition.version == version) if version else query.order_by(Definition.version.desc())
    row = session.scalars(query.limit(1)).first()
    return _stored(row, created=False) if row else None


def files(session: Session, *, key: str, version: int) -> dict[str, str]:
    """The definition's files, its main file first (that order is part of the content hash input)."""
    definition = session.scalars(select(Definition).where(Definition.key == key, Definition.version == version)).one()
    rows = session.scalars(select(DefinitionFile).where(DefinitionFile.definition_id == definition.id)).all()
    by_name = {row.file_name: row.content for row in rows}
    ordered = {definition.main_file: by_name.pop(definition.main_file)}
    ordered.update(sorted(by_name.items()))
    return ordered
