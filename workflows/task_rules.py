"""Who may claim, release, reassign and complete a user task. Pure functions over the workflow's
own state, used by the update validators (a refused request never reaches the history) and again
by the handlers (two concurrent requests can both pass validation; the second must still lose).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from temporalio.exceptions import ApplicationError

from workflows.contracts import TASK_CLAIMED, TASK_FORBIDDEN, AssignTaskInput, OpenTask


def _forbidden(message: str) -> ApplicationError:
    return ApplicationError(message, type=TASK_FORBIDDEN, non_retryable=True)


def is_candidate(task: OpenTask, actor: str | None, groups: Iterable[str]) -> bool:
    """Named by the task, or the task names no one (then every approver is)."""
    if not task.candidate_users and not task.candidate_groups:
        return True
    return actor in task.candidate_users or not set(task.candidate_groups).isdisjoint(groups)


def _who(task: OpenTask) -> str:
    parts = []
    if task.candidate_groups:
        parts.append("groups " + ", ".join(repr(g) for g in task.candidate_groups))
    if task.candidate_users:
        parts.append("users " + ", ".join(repr(u) for u in task.candidate_users))
    return " or ".join(parts)


def check_separation(task: OpenTask, actor: str | None, excluded: Mapping[str, str]) -> None:
    """Four-eyes: `excluded` maps a person to why they may not work this task."""
    if actor is not None and actor in excluded:
        raise _forbidden(f"task '{task.element_id}' must be done by someone else: '{actor}' {excluded[actor]}")


def check_complete(task: OpenTask, actor: str | None, groups: Iterable[str], excluded: Mapping[str, str]) -> None:
    check_separation(task, actor, excluded)
    if task.assignee is not None:
        if actor != task.assignee:
            raise _forbidden(
                f"task '{task.element_id}' is assigned to '{task.assignee}'; '{actor}' may not complete it"
            )
        return
    if not is_candidate(task, actor, groups):
        raise _forbidden(f"task '{task.element_id}' is for {_who(task)}; '{actor}' is neither")


def check_assignment(task: OpenTask, inp: AssignTaskInput, excluded: Mapping[str, str]) -> None:
    if inp.action == "claim":
        check_separation(task, inp.actor, excluded)
        if task.assignee == inp.actor:
            return  # claiming again is a no-op: a retried request succeeds
        if task.assignee is not None:
            raise ApplicationError(
                f"task '{task.element_id}' is already claimed by '{task.assignee}'",
                type=TASK_CLAIMED,
                non_retryable=True,
            )
        if not is_candidate(task, inp.actor, inp.groups):
            raise _forbidden(f"task '{task.element_id}' is for {_who(task)}; '{inp.actor}' is neither")
    elif inp.action == "unclaim":
        if task.assignee not in (None, inp.actor) and not inp.operator:
            raise _forbidden(f"task '{task.element_id}' is assigned to '{task.assignee}'; only they or an operator "
                             "may release it")  # fmt: skip
    elif inp.action == "assign":
        if not inp.operator:
            raise _forbidden("assigning a task to someone needs the operator role")
        if inp.assignee is not None:
            check_separation(task, inp.assignee, excluded)
    else:
        raise ApplicationError(f"unknown task action {inp.action!r}", type=TASK_FORBIDDEN, non_retryable=True)
