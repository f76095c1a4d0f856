"""Large payloads stay out of Temporal's history: a claim check.

Every payload the platform hands Temporal (workflow inputs, activity parameters and results, update
arguments, query answers, the state a run hands the next when it continues as new) passes through
this codec. One larger than the threshold (256 KiB by default, `AIMATRIX_PAYLOAD_OFFLOAD_BYTES`) is
stored in the platform database under the SHA-256 of its bytes (store/payloads.py), and the history
holds a reference of ~150 bytes instead. Temporal refuses payloads over 2 MB and histories over
50 MB; user data never reaches either limit, and the same bytes (a document passed from task to
task) are stored once. Decoding checks the digest, so a blob changed in the database is refused, not
handed to a workflow.

Every process that talks to Temporal uses it (aimatrix/temporal.py), so every pool needs the
platform database when it is handed a large payload; below the threshold nothing touches it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from store import payloads

ENCODING = b"aimatrix/claim-check"
DEFAULT_THRESHOLD = 256 * 1024
_CACHE_BYTES = 64 * 1024 * 1024  # decoded blobs kept: a workflow replays its input on every cache miss


class BlobMissingError(RuntimeError):
    """A history refers to a blob this database does not hold (a pool pointed at another database)."""


class ClaimCheckCodec(PayloadCodec):
    def __init__(
        self, session_factory: Callable[[], sessionmaker[Session]], *, threshold: int = DEFAULT_THRESHOLD
    ) -> None:
        # a factory of the factory: processes that never see a large payload never open the database
        self._factory_of = session_factory
        self._factory: sessionmaker[Session] | None = None
        self.threshold = threshold
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cached_bytes = 0

    @property
    def _sessions(self) -> sessionmaker[Session]:
        if self._factory is None:
            self._factory = self._factory_of()
        return self._factory

    async def encode(self, payloads_in: Sequence[Payload]) -> list[Payload]:
        encoded = []
        for payload in payloads_in:
            raw = payload.SerializeToString()
            if len(raw) <= self.threshold:
                encoded.append(payload)
                continue
            digest = hashlib.sha256(raw).hexdigest()
            if digest not in self._cache:
                await asyncio.to_thread(payloads.put, self._sessions, digest, raw)
                self._remember(digest, raw)
            encoded.append(
                Payload(metadata={"encoding": ENCODING, "sha256": digest.encode(), "size": str(len(raw)).encode()})
            )
        return encoded

    async def decode(self, payloads_in: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads_in:
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(payload)
                continue
            digest = payload.metadata["sha256"].decode()
            raw = self._cache.get(digest)
            if raw is None:
                raw = await asyncio.to_thread(payloads.get, self._sessions, digest)
                if raw is None:
                    raise BlobMissingError(f"payload {digest} is not in the platform database")
                if hashlib.sha256(raw).hexdigest() != digest:
                    raise BlobMissingError(f"payload {digest} was changed in the platform database")
                self._remember(digest, raw)
            else:
                self._cache.move_to_end(digest)
            decoded.append(Payload.FromString(raw))
        return decoded

    def _remember(self, digest: str, raw: bytes) -> None:
        if len(raw) > _CACHE_BYTES // 4:
            return
        self._cache[digest] = raw
        self._cached_bytes += len(raw)
        while self._cached_bytes > _CACHE_BYTES:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= len(dropped)
