"""A process that starts while Temporal is down waits for it (aimatrix/temporal.py): it retries with
backoff within its patience, then says what it could not reach."""

from __future__ import annotations

import time

import pytest

from aimatrix.binaries import free_port
from aimatrix.settings import Settings
from aimatrix.temporal import connect

pytestmark = pytest.mark.backend_free


async def test_a_temporal_that_never_answers_is_reported_after_the_patience() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    began = time.monotonic()
    with pytest.raises(RuntimeError, match="connect"):
        await connect(Settings(TEMPORAL_ADDRESS=address), patience=1.5)
    assert 0.5 <= time.monotonic() - began <= 1.5 + 5  # it retried within its patience, then gave up
