"""How much history one run of an instance may write before it continues as new.

Temporal warns at 10,240 events per run (and refuses past 51,200), and allows at most 2,000 pending
activities. A run drains once its history reaches `limit` events (or `size_limit` bytes): it
starts no new activity, lets the ones in flight finish, then continues as new with SpiffWorkflow's
state. Activities are started only while every one in flight can still report back under the event
ceiling, so draining never passes it (a 1,000-way multi-instance dispatched at once included).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LIMIT = 8_000
# Bytes too: Temporal warns at 10 MB of history per run and terminates the run at 50 MB. Payloads over
# the offload threshold (aimatrix/claim_check.py) are references, but smaller ones add up within 8,000
# events (a benchmark client without the codec passed 50 MB with a long loop's audit batches).
DEFAULT_SIZE_LIMIT = 8 * 1024 * 1024
# What one activity can still add once scheduled: started, completed, and the workflow task its
# result wakes (scheduled, started, completed) when it arrives alone; the scheduling itself is 1 more.
EVENTS_PER_ACTIVITY = 6
MAX_PENDING_ACTIVITIES = 1_500  # Temporal's limit is 2,000 per run: leave room for the engine's own


@dataclass(frozen=True)
class HistoryBudget:
    limit: int = DEFAULT_LIMIT
    size_limit: int = DEFAULT_SIZE_LIMIT

    @property
    def ceiling(self) -> int:
        """No run's history passes this (8,000 → 10,000: under Temporal's 10,240 warning)."""
        return self.limit + self.limit // 4

    def spent(self, length: int) -> bool:
        return length >= self.limit

    def size_spent(self, size_bytes: int) -> bool:
        return size_bytes >= self.size_limit

    def fits(self, length: int, in_flight: int) -> bool:
        """Whether one more activity fits in this run's history beside the `in_flight` ones
        (those scheduled in this pass included)."""
        return length + EVENTS_PER_ACTIVITY * (in_flight + 1) <= self.ceiling

    @staticmethod
    def pending_room(in_flight: int) -> bool:
        """Whether Temporal takes one more pending activity now (else it waits for one to finish)."""
        return in_flight < MAX_PENDING_ACTIVITIES
