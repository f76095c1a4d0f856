"""Large variables stay out of Temporal's history (aimatrix/claim_check.py): payloads over the threshold
are stored in the platform database by SHA-256 and the history holds a reference. Temporal refuses a
payload over 2 MB; a 3 MB document goes through an instance here, into a service task, back as its
result, past a user task, and out, on the real server, pools and database."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from aimatrix.claim_check import DEFAULT_THRESHOLD, ENCODING, BlobMissingError, ClaimCheckCodec
from store.models import PayloadBlob
from tests.helpers import DATA, deploy, http_server, start, take_and_complete, wait_for, wait_for_tasks

DOCUMENT = "".join(f"line {n}: the quick brown fox jumps over the lazy dog\n" for n in range(55_000))  # ~3 MB


def _payloads(value: Any) -> list[Payload]:
    """Every payload anywhere in a history event."""
    if isinstance(value, Payload):
        return [value]
    if isinstance(value, Message):
        return [p for _, field in value.ListFields() for p in _payloads(field)]
    if isinstance(value, (str, bytes, int, float)):
        return []
    items = value.values() if hasattr(value, "values") else value  # a map, or a repeated field
    return [p for item in items for p in _payloads(item)]


async def test_a_document_larger_than_temporal_allows_goes_through_an_instance(
    api: httpx.AsyncClient, client: Client, session_factory: sessionmaker[Session]
) -> None:
    assert len(DOCUMENT.encode()) > 2_500_000
    await deploy(api, DATA / "echo_document.bpmn")
    with http_server() as (base_url, requests):
        instance = await start(api, "echo_document", {"document": DOCUMENT, "base_url": base_url})
        [task] = await wait_for_tasks(api, instance, timeout=60)
    assert requests[0]["json"] == {"document": DOCUMENT}  # the pool got the whole document
    state = (await api.get(f"/instances/{instance}")).json()  # the state query's answer is large too
    assert state["variables"]["answer"]["json"]["echo"]["document"] == DOCUMENT

    completed = await take_and_complete(api, task, {"verdict": "fine"})
    assert completed.status_code == 200, completed.text
    done = await wait_for(api, instance, "completed", timeout=60)
    assert done["variables"]["document"] == DOCUMENT and done["variables"]["verdict"] == "fine"

    history = await client.get_workflow_handle(instance).fetch_history()
    sizes = [p.ByteSize() for event in history.events for p in _payloads(event)]
    referenced = [p for event in history.events for p in _payloads(event) if p.metadata.get("encoding") == ENCODING]
    assert max(sizes) <= DEFAULT_THRESHOLD  # nothing near Temporal's 2 MB: the large ones are references
    assert len(referenced) >= 3  # the instance's input, the call's parameters, its result (and more)
    digests = {p.metadata["sha256"].decode() for p in referenced}
    with session_factory() as session:
        stored = set(session.scalars(select(PayloadBlob.digest).where(PayloadBlob.digest.in_(digests))))
    assert stored == digests


async def test_a_blob_changed_in_the_database_is_refused(session_factory: sessionmaker[Session]) -> None:
    payload = Payload(metadata={"encoding": b"json/plain"}, data=b'"' + b"y" * 400_000 + b'"')
    [reference] = await ClaimCheckCodec(lambda: session_factory).encode([payload])
    assert reference.ByteSize() < 200
    digest = reference.metadata["sha256"].decode()
    assert digest == hashlib.sha256(payload.SerializeToString()).hexdigest()
    assert await ClaimCheckCodec(lambda: session_factory).decode([reference]) == [payload]

    with session_factory.begin() as session:
        session.execute(update(PayloadBlob).where(PayloadBlob.digest == digest).values(data=b"tampered"))
    with pytest.raises(BlobMissingError, match="changed"):
        await ClaimCheckCodec(lambda: session_factory).decode([reference])  # a fresh process: no cache


async def test_small_payloads_never_touch_the_database() -> None:
    def no_database() -> Any:
        raise AssertionError("a small payload opened the database")

    small = Payload(metadata={"encoding": b"json/plain"}, data=b'{"a": 1}')
    codec = ClaimCheckCodec(no_database)
    assert await codec.decode(await codec.encode([small])) == [small]
