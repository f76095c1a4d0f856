"""The tamper-evident audit log: append, read, verify.

Each row's hash covers its content and the previous row's hash, so editing, deleting or reordering
any row breaks the chain from there on; the head row (last seq and hash) exposes a deleted tail.
Appends are serialised by locking the head row, which is also what makes them gap-free.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.models import AuditHead, AuditRecord
from store.tenancy import scoped
from workflows.contracts import AuditEntry

GENESIS = "0" * 64
_HASHED = ("seq", "instance_id", "instance_seq", "definition_key", "occurred_at", "actor", "action",
           "element_id", "element_type", "data")  # fmt: skip


@dataclass(frozen=True)
class NewRecord:
    action: str
    occurred_at: str
    instance_id: str | None = None
    instance_seq: int | None = None
    definition_key: str | None = None
    actor: str | None = None
    element_id: str | None = None
    element_type: str | None = None
    data: dict[str, Any] | None = None
    tenant: str | None = None


def record_hash(fields: dict[str, Any], prev_hash: str) -> str:
    values = [prev_hash, *(fields[name] for name in _HASHED)]
    if fields.get("tenant") is not None:
        # hashed only when set, so rows written before tenants existed keep their hashes
        values.append({"tenant": fields["tenant"]})
    canonical = json.dumps(values, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _canonical(data: dict[str, Any] | None) -> str | None:
    return None if data is None else json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def append(session: Session, *, records: Iterable[NewRecord]) -> int:
    """Append records in order; entries of an instance already stored (same instance_seq) are skipped,
    so writers that run more than once (Temporal activities) store each entry once."""
    pending = list(records)
    if not pending:
        return 0
    # Take the head's row lock first (an UPDATE also takes SQLite's write lock): appends queue here.
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
    head = session.scalars(select(AuditHead).where(AuditHead.id == 1)).one()
    pending = _without_stored(session, pending)
    seq, prev = head.seq, head.hash
    for record in pending:
        seq += 1
        fields: dict[str, Any] = {
            "seq": seq,
            "instance_id": record.instance_id,
            "instance_seq": record.instance_seq,
            "definition_key": record.definition_key,
            "occurred_at": record.occurred_at,
            "actor": record.actor,
            "action": record.action,
            "element_id": record.element_id,
            "element_type": record.element_type,
            "data": _canonical(record.data),
            "tenant": record.tenant,
        }
        digest = record_hash(fields, prev)
        session.add(AuditRecord(**fields, prev_hash=prev, hash=digest))
        prev = digest
    session.flush()
    head.seq, head.hash = seq, prev
    return len(pending)


def _without_stored(session: Session, records: list[NewRecord]) -> list[NewRecord]:
    by_instance: dict[str, set[int]] = {}
    for record in records:
        if record.instance_id and record.instance_seq is not None:
            by_instance.setdefault(record.instance_id, set()).add(record.instance_seq)
    stored: set[tuple[str, int]] = set()
    for instance_id, seqs in by_instance.items():
        rows = session.execute(
            select(AuditRecord.instance_seq).where(
                AuditRecord.instance_id == instance_id, AuditRecord.instance_seq.in_(seqs)
            )
        )
        stored.update((instance_id, seq) for (seq,) in rows if seq is not None)
    return [r for r in records if r.instance_id is None or (r.instance_id, r.instance_seq) not in stored]


def from_entries(
    instance_id: str, definition_key: str, entries: Iterable[AuditEntry], tenant: str | None = None
) -> list[NewRecord]:
    return [
        NewRecord(
            action=e.action, occurred_at=e.at, instance_id=instance_id, instance_seq=e.seq,
            definition_key=definition_key, actor=e.actor, element_id=e.element_id, element_type=e.element_type,
            data=e.data, tenant=tenant,
        )
        for e in entries
    ]  # fmt: skip


def api_operation(
    action: str, *, actor: str, instance_id: str | None = None, definition_key: str | None = None,
    data: dict[str, Any] | None = None, at: datetime | None = None, tenant: str | None = None,
) -> NewRecord:  # fmt: skip
    return NewRecord(
        action=action, occurred_at=(at or datetime.now(UTC)).isoformat(), instance_id=instance_id,
        definition_key=definition_key, actor=actor, data=data, tenant=tenant,
    )  # fmt: skip


@dataclass(frozen=True)
class AuditView:
    seq: int
    instance_id: str | None
    instance_seq: int | None
    definition_key: str | None
    occurred_at: str
    actor: str | None
    action: str
    element_id: str | None
    element_type: str | None
    data: Any
    hash: str
    tenant: str | None = None


def _view(row: AuditRecord) -> AuditView:
    return AuditView(
        row.seq, row.instance_id, row.instance_seq, row.definition_key, row.occurred_at, row.actor, row.action,
        row.element_id, row.element_type, json.loads(row.data) if row.data else None, row.hash, row.tenant,
    )  # fmt: skip


def instance_history(session: Session, *, instance_id: str) -> list[AuditView]:
    """An instance's entries in the order they happened: the engine's by its own numbering (its
    batches may reach the log late), the API's where they were appended."""
    rows = session.scalars(select(AuditRecord).where(AuditRecord.instance_id == instance_id).order_by(AuditRecord.seq))
    views = [_view(row) for row in rows]
    return sorted(views, key=lambda v: (v.occurred_at, v.instance_seq if v.instance_seq is not None else -1, v.seq))


def search(
    session: Session, *, instance_id: str | None = None, actor: str | None = None, action: str | None = None,
    after: int = 0, limit: int = 100, tenant: str | None = None,
) -> list[AuditView]:  # fmt: skip
    query = scoped(select(AuditRecord).where(AuditRecord.seq > after), AuditRecord.tenant, tenant)
    if instance_id:
        query = query.where(AuditRecord.instance_id == instance_id)
    if actor:
        query = query.where(AuditRecord.actor == actor)
    if action:
        query = query.where(AuditRecord.action == action)
    return [_view(row) for row in session.scalars(query.order_by(AuditRecord.seq).limit(limit))]


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    head_seq: int
    problems: list[str]


def _rows(session: Session, chunk: int = 1000) -> Iterator[AuditRecord]:
    last = 0
    while True:
        rows = list(
            session.scalars(select(AuditRecord).where(AuditRecord.seq > last).order_by(AuditRecord.seq).limit(chunk))
        )
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify(session: Session) -> Verification:
    head = session.scalars(select(AuditHead).where(AuditHead.id == 1)).one()
    problems: list[str] = []
    expected_seq, prev, checked = 1, GENESIS, 0
    for row in _rows(session):
        checked += 1
        if row.seq != expected_seq:
            problems.append(f"rows {expected_seq}..{row.seq - 1} are missing")
        if row.prev_hash != prev:
            problems.append(f"row {row.seq} does not follow the row before it (deleted, inserted or reordered)")
        fields = {name: getattr(row, name) for name in (*_HASHED, "tenant")}
        if record_hash(fields, row.prev_hash) != row.hash:
            problems.append(f"row {row.seq} was changed after it was written")
        expected_seq, prev = row.seq + 1, row.hash
    if head.seq != expected_seq - 1 or head.hash != prev:
        problems.append(f"the log ends at row {expected_seq - 1} but its head says {head.seq}: rows were removed")
    return Verification(ok=not problems, checked=checked, head_seq=head.seq, problems=problems)
