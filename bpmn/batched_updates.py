"""Many service task results at once, without a whole-tree walk per result.

SpiffWorkflow refreshes every WAITING task after each task completes, walking the whole task tree
(`Workflow.update_waiting_tasks`): completing the 1,000 children of a parallel multi-instance costs
1,000 walks of a 1,000-task tree, ~12 s of CPU, in one Temporal workflow task, which Temporal takes
for a deadlock past 2 s. The results of concurrent activities arrive in batches; inside
`deferred(workflow)` the refreshes wait and run once per (sub)workflow when the batch ends or
`flush` is called: a refresh only moves WAITING tasks on, and what they wait for is what the whole
batch completed, so the tasks that become ready are the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from SpiffWorkflow.workflow import Workflow

_PENDING = "aimatrix_deferred_updates"  # attribute of the top workflow: (sub)workflows to refresh, in order
_installed = False
_original = Workflow.update_waiting_tasks


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True

    def update_waiting_tasks(self: Any) -> None:
        pending = getattr(getattr(self, "top_workflow", self), _PENDING, None)
        if pending is None:
            _original(self)
        else:
            pending.setdefault(id(self), self)

    Workflow.update_waiting_tasks = update_waiting_tasks


@contextmanager
def deferred(workflow: Any, *, enabled: bool = True) -> Iterator[None]:
    if not enabled:
        yield
        return
    install()
    setattr(workflow.top_workflow, _PENDING, {})
    try:
        yield
        flush(workflow)
    finally:
        delattr(workflow.top_workflow, _PENDING)


def flush(workflow: Any) -> None:
    """Run the refreshes deferred so far (before work that must see them)."""
    pending: dict[int, Any] | None = getattr(workflow.top_workflow, _PENDING, None)
    while pending:
        each = pending.pop(next(iter(pending)))
        _original(each)  # may complete tasks, deferring more refreshes: the loop takes them too
