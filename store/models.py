"""SQLAlchemy tables. Portable between SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Definition(Base):
    """One immutable version of a process: key + version + content hash, and the files it needs."""

    __tablename__ = "definitions"
    __table_args__ = (UniqueConstraint("key", "version"), Index("ix_definitions_key_hash", "key", "hash"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    main_file: Mapped[str] = mapped_column(String(255))
    deployed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deployed_by: Mapped[str | None] = mapped_column(String(255))
    tenant: Mapped[str | None] = mapped_column(String(255), index=True)
    # Camunda 8 `=` expressions are FEEL; rows from before FEEL was read have False (Python)
    feel: Mapped[bool] = mapped_column(Boolean, default=True, server_default=false())


class DefinitionFile(Base):
    __tablename__ = "definition_files"

    definition_id: Mapped[int] = mapped_column(ForeignKey("definitions.id"), primary_key=True)
    file_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    content: Mapped[str] = mapped_column(Text)


class Instance(Base):
    """Index of started instances. Their state lives in Temporal; this is for lookups and lists.

    `status` mirrors Temporal's: the API writes "running" at start and the status projector copies
    closures from Temporal's visibility store, so filtering never touches workflow histories.
    """

    __tablename__ = "instances"
    __table_args__ = (
        Index("ix_instances_started", "started_at", "id"),
        Index("ix_instances_status_started", "status", "started_at"),
        Index("ix_instances_key_version_started", "definition_key", "version", "started_at"),
        Index("ix_instances_tenant_started", "tenant", "started_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    definition_key: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int] = mapped_column(Integer)
    business_key: Mapped[str | None] = mapped_column(String(255), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_by: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="running", server_default="running")
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    tenant: Mapped[str | None] = mapped_column(String(255))
    # a called instance: the instance whose call activity (element) started it
    parent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    parent_element_id: Mapped[str | None] = mapped_column(String(255))


class HumanTask(Base):
    """Inbox projection, written by the engine's local activity; Temporal stays the truth."""

    __tablename__ = "human_tasks"
    __table_args__ = (Index("ix_human_tasks_state_instance", "state", "instance_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(64), index=True)
    definition_key: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    element_id: Mapped[str] = mapped_column(String(255))
    element_type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    lane: Mapped[str | None] = mapped_column(String(255))
    documentation: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))  # open | completed | cancelled
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_by: Mapped[str | None] = mapped_column(String(255))
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    tenant: Mapped[str | None] = mapped_column(String(255), index=True)
    assignee: Mapped[str | None] = mapped_column(String(255), index=True)
    priority: Mapped[int] = mapped_column(Integer, default=50, server_default="50")
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    form: Mapped[str | None] = mapped_column(String(255))
    ui_form: Mapped[str | None] = mapped_column(String(255))
    escalated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class HumanTaskCandidate(Base):
    """Who a task is open to, one row per candidate group or user (the inbox joins on it)."""

    __tablename__ = "human_task_candidates"
    __table_args__ = (Index("ix_human_task_candidates_name", "kind", "name"),)

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # group | user
    name: Mapped[str] = mapped_column(String(255), primary_key=True)


class ApiKey(Base):
    """API keys, stored as SHA-256 digests: a leaked database does not leak usable keys."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(String(255))
    # Comma-separated: role names come from a small fixed vocabulary without commas.
    roles: Mapped[str] = mapped_column(String(255))
    # JSON rather than a joined string: group names from a directory may hold commas ("cn=x,ou=y").
    groups: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    tenant: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IncidentRow(Base):
    """Incident projection: service tasks waiting for an operator, written with the inbox."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_state_instance", "state", "instance_id"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(64), index=True)
    definition_key: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    task_id: Mapped[str] = mapped_column(String(64))
    element_id: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    error_type: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # open | resolved
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    tenant: Mapped[str | None] = mapped_column(String(255), index=True)


class MessageSubscriptionRow(Base):
    """Elements waiting for a message or a signal, written with the inbox: how POST /messages and
    POST /signals find instances."""

    __tablename__ = "message_subscriptions"
    __table_args__ = (
        Index("ix_message_subscriptions_name_key", "message_name", "correlation_key", "created_at"),
        Index("ix_message_subscriptions_instance", "instance_id"),
        Index("ix_message_subscriptions_kind_name", "kind", "message_name"),
    )

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(64))
    definition_key: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    element_id: Mapped[str] = mapped_column(String(255))
    message_name: Mapped[str] = mapped_column(String(255))
    correlation_key: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tenant: Mapped[str | None] = mapped_column(String(255), index=True)
    kind: Mapped[str] = mapped_column(String(16), server_default="message")  # message | signal


class MessageStartEvent(Base):
    """The messages that start a definition version (its top-level message start events)."""

    __tablename__ = "message_start_events"
    __table_args__ = (Index("ix_message_start_events_name", "message_name"),)

    definition_id: Mapped[int] = mapped_column(ForeignKey("definitions.id"), primary_key=True)
    message_name: Mapped[str] = mapped_column(String(255), primary_key=True)


class SignalStartEvent(Base):
    """The signals that start a definition version (its top-level signal start events)."""

    __tablename__ = "signal_start_events"
    __table_args__ = (Index("ix_signal_start_events_name", "signal_name"),)

    definition_id: Mapped[int] = mapped_column(ForeignKey("definitions.id"), primary_key=True)
    signal_name: Mapped[str] = mapped_column(String(255), primary_key=True)


class AuditRecord(Base):
    """The audit log: append-only, each row chained to the previous by a SHA-256 hash.

    On PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE for every role, the API's included.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        UniqueConstraint("instance_id", "instance_seq", name="uq_audit_instance_seq"),
        Index("ix_audit_instance", "instance_id", "instance_seq"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    instance_id: Mapped[str | None] = mapped_column(String(64))
    instance_seq: Mapped[int | None] = mapped_column(Integer)
    definition_key: Mapped[str | None] = mapped_column(String(255))
    occurred_at: Mapped[str] = mapped_column(String(40))  # ISO 8601, as hashed
    actor: Mapped[str | None] = mapped_column(String(255), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    element_id: Mapped[str | None] = mapped_column(String(255))
    element_type: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[str | None] = mapped_column(Text)  # canonical JSON, as hashed
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    tenant: Mapped[str | None] = mapped_column(String(255), index=True)


class AuditHead(Base):
    """The chain's last sequence number and hash: appends lock it, and a deleted tail shows against it."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class PayloadBlob(Base):
    """A Temporal payload too large for the history (aimatrix/claim_check.py), under the SHA-256 of its
    bytes: the history holds the digest, this table the bytes; the same bytes are stored once."""

    __tablename__ = "payload_blobs"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
