"""Keeping a long-running instance's task tree shallow.

SpiffWorkflow keeps every task an instance ever ran, as a chain: each loop iteration hangs below the
one before. Two things follow. Every engine pass walks the whole tree, so a step costs more the longer
an instance has run (about 8,500 steps/s at 13 tasks, 650 at 750); and its task iterator stops at depth
1,000, so past ~500 loop iterations an instance reports completed while a task is still ready, with its
data lost. Here, once the live tokens sit deep enough, the finished chain above them is cut off: the
nearest finished common ancestor of every live task becomes the root's only child. Nothing live changes
(ids, data, states, order); the elements that completed in the cut part are remembered for
`completed_elements`, and their subprocess instances are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

# Cut when a live task is deeper than this; what stays above the live tokens is short, so a pass
# walks at most about this many finished tasks however long the instance ran.
PRUNE_DEPTH = 24
# Inside a pass (inline scripts can loop thousands of times in one), look again every so many tasks.
CHECK_EVERY = 8
_PRUNED = "aimatrix_pruned_completed"  # attribute of the top workflow: element id → None, in order
# attribute of the top workflow: cut each live branch below the root on its own (`_branch_cut_points`);
# False replays histories from before, where two live branches were never cut
BRANCHES = "aimatrix_prune_each_branch"


def pruned_completed(workflow: BpmnWorkflow) -> list[str]:
    """Elements that completed in parts of the tree cut off, first completion first."""
    return list(getattr(workflow.top_workflow, _PRUNED, {}))


def remember_completed(workflow: BpmnWorkflow, element_ids: list[str]) -> None:
    """Elements completed outside the tree this instance holds now: what a restored instance's
    (bpmn/snapshot.py) cut-off parts completed, what the instances its call activities called
    completed. They travel in a snapshot and count as completed."""
    _completed(workflow).update(dict.fromkeys(element_ids))


def _completed(workflow: BpmnWorkflow) -> dict[str, None]:
    done: dict[str, None] | None = getattr(workflow.top_workflow, _PRUNED, None)
    if done is None:
        done = {}
        setattr(workflow.top_workflow, _PRUNED, done)
    return done


def prune(workflow: BpmnWorkflow, before_cut: Callable[[], bool] | None = None) -> list[str]:
    """Cut the finished chains above the live tokens of the instance and of its active subprocesses,
    where they are deep. `before_cut` is called before each cut, only when there is something to cut:
    False stops it (the engine records what the tasks did first, and asks Temporal whether this
    history may be cut). The ids of the tasks removed."""
    removed: list[str] = []
    by_branch = getattr(workflow.top_workflow, BRANCHES, False)
    for each in [workflow, *workflow.get_active_subprocesses()]:
        if by_branch:
            keep = _branch_cut_points(each)
            if not keep:
                continue
            if before_cut is not None and not before_cut():
                return removed
            removed.extend(_cut_branches(workflow, each, keep))
            continue
        cut = _cut_point(each)
        if cut is None:
            continue
        if before_cut is not None and not before_cut():
            return removed
        removed.extend(_cut(workflow, each, cut))
    return removed


class Pruner:
    """Prunes one workflow during and between engine passes; collects the ids of removed tasks."""

    def __init__(self, workflow: BpmnWorkflow, before_cut: Callable[[], bool] | None) -> None:
        self._workflow = workflow
        self._before_cut = before_cut
        self._since = 0
        self.removed: list[str] = []

    def after_task(self, task: Task) -> None:
        """Spiff's `did_complete_task` callback of `do_engine_steps`."""
        self._since += 1
        if self._since >= CHECK_EVERY:
            self.prune()

    def prune(self) -> bool:
        self._since = 0
        cut = prune(self._workflow, self._before_cut)
        self.removed.extend(cut)
        return bool(cut)


def _cut_point(workflow: Any) -> Task | None:
    """The finished task to become the root's only child, or None if the tree is shallow enough."""
    live = [t for t in workflow.tasks.values() if not t.has_state(TaskState.FINISHED_MASK)]
    return _common_finished_ancestor(live) if live else None


def _branch_cut_points(workflow: Any) -> list[Task]:
    """Where several branches hang below the root and live at once (the flow, and an event subprocess
    that was started beside it), each is cut on its own: the finished task to become the root's child
    in its place, for each branch that is deep. A branch that finished is dropped with the first cut.

    With one live branch this is `_cut_point`; `_cut_point` alone would never cut two (their only
    common ancestor is the root), and the flow's loop would grow past Spiff's iterator depth."""
    root = workflow.task_tree
    if len(root._children) <= 1:  # one branch, the usual case: as cheap as `_cut_point`
        cut = _cut_point(workflow)
        return [cut] if cut is not None else []
    branch_of: dict[Any, Any] = {}  # task id → the id of the root's child above it, for tasks walked
    branches: dict[Any, list[Task]] = {}
    for task in workflow.tasks.values():
        if task is root or task.has_state(TaskState.FINISHED_MASK):
            continue
        path = []
        node = task
        while node.id not in branch_of and node.parent is not None and node.parent is not root:
            path.append(node.id)
            node = node.parent
        branch = branch_of.get(node.id, node.id)
        for task_id in [*path, node.id]:
            branch_of[task_id] = branch
        branches.setdefault(branch, []).append(task)
    return [cut for tasks in branches.values() if (cut := _common_finished_ancestor(tasks)) is not None]


def _common_finished_ancestor(live: list[Task]) -> Task | None:
    """The deepest finished task above all of `live` (the first one's chain), if deep enough to cut to."""
    chain: list[Task] = []  # root … first live task
    node: Task | None = live[0]
    while node is not None:
        chain.append(node)
        node = node.parent
    chain.reverse()
    if len(chain) <= PRUNE_DEPTH:
        return None
    position = {task.id: index for index, task in enumerate(chain)}
    lowest = len(chain) - 1
    for task in live[1:]:
        node = task
        while node is not None and node.id not in position:
            node = node.parent
        lowest = min(lowest, position[node.id] if node is not None else 0)
    while lowest > 0 and not chain[lowest].has_state(TaskState.FINISHED_MASK):
        lowest -= 1
    if lowest < PRUNE_DEPTH // 2:
        return None
    return chain[lowest]


def _cut_branches(top: BpmnWorkflow, workflow: Any, keep: list[Task]) -> list[str]:
    """`_cut` for several branches: each kept task takes the place, below the root, of the branch it
    is in; a live branch not deep enough to cut is kept whole, and branches with nothing live go."""
    root = workflow.task_tree
    in_place_of = {_branch_of(task, root).id: task.id for task in keep}
    for task in workflow.tasks.values():
        if task is not root and not task.has_state(TaskState.FINISHED_MASK):
            branch = _branch_of(task, root).id
            in_place_of.setdefault(branch, branch)
    kept = {root.id}
    stack = [workflow.tasks[task_id] for task_id in in_place_of.values()]
    while stack:
        task = stack.pop()
        kept.add(task.id)
        stack.extend(task.children)
    removed = _drop(top, workflow, kept)
    root._children = [in_place_of[child] for child in root._children if child in in_place_of]
    for task_id in root._children:
        workflow.tasks[task_id]._parent = root.id
    return removed


def _branch_of(task: Task, root: Task) -> Task:
    """The root's child the task hangs below (or is)."""
    while task.parent is not None and task.parent is not root:
        task = task.parent
    return task


def _cut(top: BpmnWorkflow, workflow: Any, keep: Task) -> list[str]:
    root = workflow.task_tree
    kept = {root.id}
    stack = [keep]
    while stack:
        task = stack.pop()
        kept.add(task.id)
        stack.extend(task.children)
    removed = _drop(top, workflow, kept)
    root._children = [keep.id]
    keep._parent = root.id
    return removed


def _drop(top: BpmnWorkflow, workflow: Any, kept: set[Any]) -> list[str]:
    """Remove the workflow's tasks not in `kept`, remembering the elements they completed."""
    dropped = [task for task_id, task in workflow.tasks.items() if task_id not in kept]
    completed = _completed(top)
    for task in sorted(dropped, key=lambda t: t.last_state_change):
        if task.has_state(TaskState.COMPLETED) and getattr(task.task_spec, "bpmn_id", None):
            completed.setdefault(task.task_spec.bpmn_id)
    for task in dropped:
        if task.id in top.top_workflow.subprocesses:
            top.top_workflow.delete_subprocess(task)
        del workflow.tasks[task.id]
    return [str(task.id) for task in dropped]
