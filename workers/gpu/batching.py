"""Dynamic batching: texts of concurrent requests gathered into one forward pass.

A device does far more work per second on one pass over 32 texts than on 32 passes over one, but
requests arrive one at a time. The batcher queues them and starts a pass when `max_batch_size`
texts wait or when the oldest has waited `max_wait_ms`, whichever is first; while a pass runs, new
requests queue up and go together into the next one. It waits only while requests arrive less than
`max_wait_ms` apart on average: a lone request (a quiet worker) starts its pass at once.

A request with more texts than a pass takes is split over several passes, so a long request neither
blocks short ones for long nor keeps running after it is cancelled: its texts not yet in a pass are
dropped.

Passes run on one executor thread (the device thread), so the event loop stays free to heartbeat,
poll for tasks and take cancellations while the model computes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Rows = npt.NDArray[np.float32]


@dataclass(frozen=True)
class BatchPolicy:
    max_batch_size: int = 32  # texts per forward pass
    max_wait_ms: float = 5.0  # how long the oldest waiting text may wait for company
    enabled: bool = True  # False: every request runs alone (its own passes), for comparison

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.max_wait_ms < 0:
            raise ValueError("max_batch_size must be ≥ 1 and max_wait_ms ≥ 0")


@dataclass
class BatcherStats:
    requests: int = 0
    passes: int = 0
    texts: int = 0  # texts that went through a forward pass
    largest_pass: int = 0
    cancelled: int = 0  # requests cancelled before all their texts ran
    dropped: int = 0  # texts never run because their request was cancelled
    in_pass: bool = False  # a forward pass is running now


class Pending:
    """One request's texts on their way through the batcher."""

    def __init__(self, texts: list[str], future: asyncio.Future[Rows]) -> None:
        self.texts = texts
        self.future = future
        self.arrived = time.monotonic()
        self.rows: list[Rows | None] = [None] * len(texts)
        self.scheduled = 0  # texts handed to a pass so far (they are taken in order)
        self.done = 0
        self.largest_pass = 0  # the biggest pass its texts shared: how much batching it got

    @property
    def waiting(self) -> int:
        return len(self.texts) - self.scheduled


class DynamicBatcher:
    def __init__(self, forward: Callable[[list[str]], Rows], policy: BatchPolicy, executor: Executor) -> None:
        self._forward = forward
        self.policy = policy
        self._executor = executor
        self._queue: deque[Pending] = deque()  # requests with texts not yet handed to a pass
        self._wake = asyncio.Event()
        self._last_arrival = 0.0
        self._mean_gap = math.inf  # moving average of the time between arrivals, seconds
        self._loop: asyncio.Task[None] | None = None
        self.stats = BatcherStats()

    def submit(self, texts: list[str]) -> Pending:
        if not texts:
            raise ValueError("nothing to compute: no texts")
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._run(), name="dynamic batcher")
        pending = Pending(list(texts), asyncio.get_running_loop().create_future())
        gap = pending.arrived - self._last_arrival
        self._last_arrival = pending.arrived
        self._mean_gap = gap if math.isinf(self._mean_gap) else 0.8 * self._mean_gap + 0.2 * gap
        self._queue.append(pending)
        self.stats.requests += 1
        self._wake.set()
        return pending

    async def result(self, pending: Pending) -> Rows:
        """The request's rows, in the order of its texts. Cancelling the awaiting task cancels the
        request: texts not yet in a pass never run."""
        try:
            return await asyncio.shield(pending.future)
        except asyncio.CancelledError:
            self.cancel(pending)
            raise

    async def run(self, texts: list[str]) -> Rows:
        return await self.result(self.submit(texts))

    def cancel(self, pending: Pending) -> None:
        if pending.future.done():
            return
        pending.future.cancel()
        self.stats.cancelled += 1
        self.stats.dropped += pending.waiting
        with contextlib.suppress(ValueError):
            self._queue.remove(pending)

    async def aclose(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        for pending in self._queue:
            pending.future.cancel()
        self._queue.clear()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.policy.enabled:
                await self._gather()
            batch = self._take()
            if not batch:
                continue
            texts = [pending.texts[index] for pending, index in batch]
            self.stats.in_pass = True
            try:
                rows = await loop.run_in_executor(self._executor, self._forward, texts)
            except Exception as err:
                # a failing pass fails every request in it (the activity's retry decides what next)
                for pending in {id(p): p for p, _ in batch}.values():
                    if not pending.future.done():
                        pending.future.set_exception(err)
                    with contextlib.suppress(ValueError):
                        self._queue.remove(pending)
                continue
            finally:
                self.stats.in_pass = False
            self.stats.passes += 1
            self.stats.texts += len(texts)
            self.stats.largest_pass = max(self.stats.largest_pass, len(texts))
            for (pending, index), row in zip(batch, rows, strict=True):
                if pending.future.done():
                    continue  # cancelled while its pass ran
                pending.rows[index] = row
                pending.done += 1
                pending.largest_pass = max(pending.largest_pass, len(texts))
                if pending.done == len(pending.texts):
                    pending.future.set_result(np.stack([r for r in pending.rows if r is not None]))

    async def _gather(self) -> None:
        """Wait until a full pass waits or the oldest request has waited max_wait_ms, if company is likely."""
        if self._mean_gap * 1000 >= self.policy.max_wait_ms:
            return  # the next request is not expected within the wait: waiting only adds latency
        deadline = self._queue[0].arrived + self.policy.max_wait_ms / 1000
        while self._queue and sum(p.waiting for p in self._queue) < self.policy.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)

    def _take(self) -> list[tuple[Pending, int]]:
        """The next pass: texts in arrival order, from as many requests as fit (batching on) or from
        the oldest request only (batching off)."""
        batch: list[tuple[Pending, int]] = []
        room = self.policy.max_batch_size
        while self._queue and room:
            pending = self._queue[0]
            count = min(room, pending.waiting)
            batch.extend((pending, pending.scheduled + i) for i in range(count))
            pending.scheduled += count
            room -= count
            if not pending.waiting:
                self._queue.popleft()
            if not self.policy.enabled:
                break
        return batch
