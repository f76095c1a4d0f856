"""Stored histories of finished instances replay against the current code without non-determinism.

The session fixture `workers` also replays every history the test session produced; these stored
ones guard against a change that would break instances started by an older release. Refresh them
with `AIMATRIX_RECORD_HISTORIES=1 make test` when a change is meant to be incompatible (and bump
the workflow with a patch/version marker instead, where instances may still be running).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from workers.engine import replay_failures

pytestmark = pytest.mark.backend_free  # no platform database: once, in the SQLite pass

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_there_are_stored_histories() -> None:
    assert len(HISTORIES) >= 5, HISTORIES


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_stored_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())  # noqa: ASYNC240 (a small local file)
    failed = await replay_failures([history])
    assert not failed, failed
