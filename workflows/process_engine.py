"""The engine behind ProcessWorkflow: one BPMN process instance, interpreted by SpiffWorkflow.

The loop is: run the engine (scripts, gateways and events cost no history events), start an
activity for every service task that became ready, publish the open user tasks to the inbox
projection when they change, then wait for something from outside — an activity result, a task
completion (a workflow update), a timer — and go round again. Every recorded command comes from a
BPMN element, so Temporal's history is the process history.

This module is imported passed through the workflow sandbox (workflows/process.py holds the thin
workflow class): re-importing ~300 lines into a fresh sandbox for every run cost 3-5 ms of CPU per
instance, measurably lowering throughput (BENCHMARKS.md). It keeps no module-level state; it
calls only Temporal's deterministic workflow APIs, and the replay tests guard that.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeout
from temporalio.workflow import ParentClosePolicy

from bpmn import (
    batched_updates,
    boundary_rearm,
    call_activities,
    decisions,
    event_subprocesses,
    forms,
    human_tasks,
    messages,
    ordered_outputs,
    pruning,
    runtime,
    signals,
    snapshot,
)
from bpmn.definitions import load_process
from workflows import task_rules
from workflows.contracts import (
    AUDIT_ACTIVITY,
    BPMN_ERROR,
    BROADCAST_SIGNAL_ACTIVITY,
    CALL_RETURNED_SIGNAL,
    EDGE_SITE_PATTERN,
    INCIDENT_NOT_OPEN,
    INDEX_CALLED_ACTIVITY,
    INSTANCE_NOT_RUNNING,
    INVALID_FORM_DATA,
    INVALID_VARIABLES,
    MESSAGE_NOT_WAITING,
    MESSAGE_PUBLISH_ACTIVITY,
    MODEL_ERROR,
    PREPARE_CALL_ACTIVITY,
    PROCESS_WORKFLOW,
    SCRIPT_ACTIVITY,
    SIGNAL_NOT_WAITING,
    SYNC_TASKS_ACTIVITY,
    TASK_NOT_OPEN,
    AssignTaskInput,
    AuditBatch,
    AuditEntry,
    BroadcastSignalInput,
    CalledInstanceIndex,
    CallParent,
    CallReturn,
    ClosedTask,
    CompleteTaskInput,
    CompleteTaskResult,
    DeliverMessageInput,
    DeliverMessageResult,
    DeliverSignalInput,
    DeliverSignalResult,
    EngineSnapshot,
    Incident,
    MessageSubscription,
    OpenTask,
    OperatorRoute,
    PrepareCallInput,
    ProcessInput,
    ProcessResult,
    ProcessState,
    RetryIncidentInput,
    ServiceTaskInput,
    SetVariablesInput,
    SignalBroadcast,
    SyncTasksInput,
    TaskAssigned,
)
from workflows.history_budget import DEFAULT_LIMIT, DEFAULT_SIZE_LIMIT, HistoryBudget

# Audit entries wait for the next projection write; past this many they are written on their own.
_AUDIT_BUFFER = 200
_AUDIT_DATA_LIMIT = 4_000  # characters of JSON kept per entry: a decision's data, not a dump
# Spiff's timers compare with a strict "<": wake a hair after the deadline so one pass suffices.
_TIMER_SLACK = timedelta(milliseconds=1)
_SYNC_TIMEOUT = timedelta(seconds=30)
# A broadcast retries until it gets through (the database or Temporal may be down for a while): the
# signal was thrown, and the instance ends only once it has gone out.
_BROADCAST_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
_SCRIPT_SANDBOX_PATCH = "script-tasks-in-sandbox"
_PRUNE_PATCH = "prune-deep-task-trees"
_ORDERED_OUTPUTS_PATCH = "ordered-multi-instance-outputs"
_CONTINUE_PATCH = "continue-as-new"
_BATCH_PATCH = "batched-service-results"
_UNCAUGHT_PATCH = "uncaught-errors-fail"
_CHILD_PATCH = "call-activities-as-child-workflows"
_DECISIONS_PATCH = "decision-hit-policies"
_BOUNDED_PATCH = "bounded-engine-passes"
_SIZE_PATCH = "history-size-budget"
_REARM_PATCH = "rearm-non-interrupting-boundaries"
_ESP_DATA_PATCH = "event-subprocess-current-data"
_BRANCH_PRUNE_PATCH = "prune-each-branch"
# Tasks one engine pass runs before it ends the workflow task and goes on in the next: a loop that
# never leaves the workflow (gateways, business rule tasks) would otherwise hold one workflow task
# past Temporal's deadlock detector (2 s), and the instance would fail every workflow task for good.
# About 0.1 s of SpiffWorkflow here; each break costs a 1 ms timer (3 history events and a round trip).
PASS_STEPS = 1_000
_PASS_BREAK = timedelta(milliseconds=1)
# Names a called instance after its call: the same call (task, dispatch) names the same instance.
_CALLS = uuid.UUID("6f1c2d4e-8a3b-4c5d-9e7f-0a1b2c3d4e5f")
_PREPARE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


class _Failure(Exception):
    """Ends the instance as failed, with a message naming the element (and the BPMN error's code,
    when an uncaught error failed it: a caller's call activity may catch it)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class ProcessEngine:
    def __init__(self, inp: ProcessInput) -> None:
        self._input = inp
        process = load_process(inp.files, inp.definition_key, inp.definition_hash, feel=inp.feel)
        resume = inp.resume
        self._bw = snapshot.load(resume.spiff, process) if resume else runtime.new_workflow(process, inp.variables)
        self._budget = HistoryBudget(inp.history_limit or DEFAULT_LIMIT, inp.history_size_limit or DEFAULT_SIZE_LIMIT)
        self._draining = False  # this run's history is spent: start nothing new, then continue as new
        self._status = "running"
        self._error: str | None = None
        self._open: dict[str, OpenTask] = {}
        self._closed: list[ClosedTask] = []
        self._published: set[str] = set()
        self._activities: dict[str, asyncio.Task[None]] = {}
        self._dispatches: dict[str, int] = {}  # service task id → activities started for it
        self._incidents: dict[str, Incident] = {}
        self._published_incidents: set[str] = set()
        self._inbox: list[tuple[str, str, Any]] = []  # (kind, spiff task id, payload), in arrival order
        self._epoch = 0
        self._synced_epoch = 0
        self._seen: dict[str, str] = {}  # task id → last transition recorded
        self._audit: list[AuditEntry] = []
        self._audit_seq = 0
        self._details: dict[str, tuple[str | None, dict[str, Any] | None]] = {}  # task id → actor, data
        self._pass_steps: int | None = None  # the bound of one engine pass (PASS_STEPS; None: unbounded)
        self._cut_short = False  # the last pass stopped at its bound with engine work left
        self._subscriptions: dict[str, MessageSubscription] = {}  # task id → subscription, oldest first
        self._published_subscriptions: set[str] = set()
        self._delivered: dict[str, bool] = {}  # task id → whether the message it was sent reached it
        self._completers: dict[str, list[str]] = {}  # element id → who completed it (four-eyes)
        self._tasks_changed = False  # an open task was claimed, assigned or escalated: publish it
        self._forms: dict[str, dict[str, Any]] = {}  # form file → JSON Schema, parsed once
        self._broadcasts: list[asyncio.Task[None]] = []  # signals thrown here, on their way out
        self._signal_seq = 0  # signals thrown so far: names each broadcast's activity
        self._signals_in = 0  # signals delivered from outside so far
        self._signal_reached: dict[int, list[str]] = {}  # delivery number → the elements it reached
        self._children: dict[str, str] = {}  # call activity task id → the instance it called
        # commands to other instances on their way: cancels of called instances, escalations to the caller
        self._to_others: list[asyncio.Task[None]] = []
        if resume is not None:
            self._resume(resume)

    def _resume(self, resume: EngineSnapshot) -> None:
        """Go on where the run before left off. It published everything before it continued, so
        what it held open is what the inbox and the subscription projection show already."""
        self._open = {t.id: t for t in resume.open_tasks}
        self._published = set(self._open)
        self._incidents = {i.id: i for i in resume.incidents}
        self._published_incidents = set(self._incidents)
        self._subscriptions = {s.task_id: s for s in resume.subscriptions}
        self._published_subscriptions = set(self._subscriptions)
        self._seen = dict(resume.seen)
        self._audit_seq = resume.audit_seq
        self._dispatches = dict(resume.dispatches)
        self._completers = {k: list(v) for k, v in resume.completers.items()}
        self._details = {k: (v[0], v[1]) for k, v in resume.details.items()}
        self._signal_seq = resume.signal_seq
        self._signals_in = resume.signals_in
        self._children = dict(resume.children)

    async def run(self) -> ProcessResult:
        resume = self._input.resume
        if resume is None:
            self._record(
                "instance.started",
                actor=self._input.started_by,
                data={"variables": self._input.variables, "business_key": self._input.business_key},
            )
            # Parallel multi-instance results in input order; histories from before kept completion order.
            setattr(self._bw, ordered_outputs.ORDERED, workflow.patched(_ORDERED_OUTPUTS_PATCH))
        else:
            self._record("instance.continued", data={"run": resume.run + 1})
        # the input routes `sandbox.script` exactly when the process has script tasks
        # Call activities start child workflows; histories that ran them as Spiff subprocesses replay so
        # (a run continued from one goes on with its subprocesses in progress: bpmn/call_activities.py).
        setattr(self._bw, call_activities.CHILD_CALLS, workflow.patched(_CHILD_PATCH))
        # Business rule tasks honour every hit policy and result variable; histories from before ran
        # SpiffWorkflow's UNIQUE/COLLECT reading of any table and replay so (bpmn/decisions.py).
        setattr(self._bw, decisions.STRICT, workflow.patched(_DECISIONS_PATCH))
        # A non-interrupting message, signal or escalation boundary event catches each event while its
        # activity runs; histories from before caught one (SpiffWorkflow's) and replay so.
        setattr(self._bw, boundary_rearm.REARM, workflow.patched(_REARM_PATCH))
        # An event subprocess starts with the process's variables as they are; histories from before
        # started it with those changed since the process started at their start values.
        setattr(self._bw, event_subprocesses.CURRENT_DATA, workflow.patched(_ESP_DATA_PATCH))
        # A deep branch is cut while another lives beside it (an event subprocess); histories from
        # before cut only below the common ancestor of every live task (bpmn/pruning.py).
        setattr(self._bw, pruning.BRANCHES, workflow.patched(_BRANCH_PRUNE_PATCH))
        setattr(self._bw, decisions.DECIDED, self._details)  # a decision's audit entry, as other tasks' details
        # Histories recorded before passes were bounded ran each pass to its end, and replay so.
        self._pass_steps = PASS_STEPS if workflow.patched(_BOUNDED_PATCH) else None
        if SCRIPT_ACTIVITY in self._input.operators and workflow.patched(_SCRIPT_SANDBOX_PATCH):
            # Histories recorded before the sandbox ran scripts inline: those replay as they ran.
            self._bw.script_engine.inline_scripts = False
        # A called instance's first step writes its own index row. A cancellation while that is in
        # flight must still end the way every other does (the row, then the caller told), so the
        # write is not cancelled with the run: it is shielded here and awaited on the way out.
        indexing = None
        if resume is None and self._input.parent is not None:
            indexing = asyncio.create_task(self._index_as_called())
        try:
            if indexing is not None:
                await asyncio.shield(indexing)
            if resume is not None:
                pass  # it started long ago: its start event is history
            elif self._input.start_message is not None:
                self._start_by_message(self._input.start_message)
            elif self._input.start_timer is not None:
                if not messages.start_by_element(self._bw, self._input.start_timer):
                    raise _Failure(f"the process has no timer start event '{self._input.start_timer}'")
                self._record("timer.fired", element_id=self._input.start_timer, actor=self._input.started_by)
            elif self._input.start_signal is not None:
                if not signals.start_by_signal(self._bw, self._input.start_signal):
                    raise _Failure(f"the process has no signal start event for signal '{self._input.start_signal}'")
                self._record("signal.received", actor=self._input.started_by,
                             data={"name": self._input.start_signal, "start": True})  # fmt: skip
            while True:
                self._advance()
                await self._publish_tasks()
                if self._bw.completed:
                    break
                if self._quiet():
                    await self._continue_as_new()
                if self._cut_short:
                    await workflow.sleep(_PASS_BREAK)  # a new workflow task: the pass stopped at its bound
                    continue
                await self._wait()
            await self._signals_sent()
        except asyncio.CancelledError:
            if indexing is not None:
                await indexing  # done already, unless the cancellation came during the first step
            self._status = "cancelled"
            self._bw.cancel()  # every active element is cancelled, and the audit says which
            self._record_transitions()
            self._record("instance.cancelled")
            await self._close_everything("cancelled")
            await self._return(
                CallReturn("", self._input.instance_id, "cancelled", error="the called instance was cancelled")
            )
            raise
        except _Failure as failure:
            self._status, self._error = "failed", str(failure)
            self._record_transitions()  # what ran up to the failure, the failing element included
            await self._signals_sent()  # thrown before the failure: they were thrown
            self._record("instance.failed", data={"error": str(failure)})
            await self._close_everything("cancelled")
            await self._return(
                CallReturn("", self._input.instance_id, "failed", error=str(failure), error_code=failure.code)
            )
            raise ApplicationError(str(failure), type=MODEL_ERROR, non_retryable=True) from None
        self._status = "completed"
        self._record("instance.completed")
        variables = runtime.variables(self._bw)
        completed = runtime.completed_elements(self._bw)
        if self._input.parent is not None:
            try:
                returned, outputs_only = call_activities.output_variables(self._bw.spec, variables)
            except KeyError as err:
                message = str(err.args[0])
                self._record("instance.failed", data={"error": message})
                await self._write_audit()
                await self._return(CallReturn("", self._input.instance_id, "failed", error=message))
                raise ApplicationError(message, type=MODEL_ERROR, non_retryable=True) from None
            await self._return(CallReturn("", self._input.instance_id, "completed", returned, outputs_only, completed))
        audit, self._audit = self._audit, []
        return ProcessResult("completed", variables, completed, audit=audit)

    # -- the engine ---------------------------------------------------------------------------

    def _start_by_message(self, name: str) -> None:
        if not messages.start_by_message(self._bw, name):
            raise _Failure(f"the process has no message start event for message '{name}'")
        self._record(
            "message.received",
            actor=self._input.started_by,
            data={"name": name, "correlation_key": self._input.business_key, "start": True},
        )

    def _advance(self) -> None:
        inbox, self._inbox = self._inbox, []
        # Results of concurrent activities arrive together (a wide multi-instance): Spiff's refresh of
        # waiting tasks runs once for them, not once each (bpmn/batched_updates.py)
        batched = sum(kind == "service_result" for kind, _, _ in inbox) > 1 and workflow.patched(_BATCH_PATCH)
        try:
            with batched_updates.deferred(self._bw, enabled=batched):
                for kind, task_id, payload in inbox:
                    if kind != "service_result":
                        batched_updates.flush(self._bw)  # anything else sees the state as it is
                    self._apply(kind, task_id, payload)
            done = runtime.run_pass(self._bw, self._before_cut, self._uncaught, max_steps=self._pass_steps)
            for task_id in done.removed:
                self._seen.pop(task_id, None)  # recorded already; the task is gone for good
            self._cut_short = done.cut_short
        except SpiffWorkflowException as err:
            _reraise_temporal(err)
            raise _Failure(_describe(err)) from None
        if not self._draining and (
            self._budget.spent(workflow.info().get_current_history_length()) or self._size_spent()
        ):
            self._may_continue()
        self._reconcile_activities()
        self._reconcile_human_tasks()
        self._reconcile_subscriptions()
        self._record_transitions()
        self._broadcast_thrown()
        self._epoch += 1

    def _may_continue(self) -> bool:
        """This run's history is spent: drain it (histories recorded before runs continued as new
        replay as they ran, one run)."""
        if not self._draining and workflow.patched(_CONTINUE_PATCH):
            self._draining = True
        return self._draining

    def _size_spent(self) -> bool:
        """This run's history nears Temporal's size limit. Runs recorded before size counted drained on
        events only, and replay so: the patch is recorded the first time size decides."""
        return self._budget.size_spent(workflow.info().get_current_history_size()) and workflow.patched(_SIZE_PATCH)

    def _quiet(self) -> bool:
        """A draining run with nothing in flight: no activity, no broadcast, no update half-handled,
        nothing queued. What it holds now is all in its state."""
        return (
            self._draining
            and not self._inbox
            and all(pending.done() for pending in self._activities.values())
            and all(sent.done() for sent in self._broadcasts)
            and all(sent.done() for sent in self._to_others)
            and workflow.all_handlers_finished()
        )

    async def _continue_as_new(self) -> None:
        """Hand the instance to a fresh run with SpiffWorkflow's state, once the audit entries of this
        one are written (a completed instance's last entries travel in its result; these would not)."""
        if self._audit:
            await self._write_audit()
            if not self._quiet():
                return  # something arrived meanwhile: the main loop takes it, then comes back here
        runs = self._input.resume.run + 1 if self._input.resume else 1
        state = EngineSnapshot(
            spiff=snapshot.dump(self._bw),
            run=runs,
            open_tasks=list(self._open.values()),
            incidents=list(self._incidents.values()),
            subscriptions=list(self._subscriptions.values()),
            seen=dict(self._seen),
            audit_seq=self._audit_seq,
            dispatches=dict(self._dispatches),
            completers=dict(self._completers),
            details={k: [actor, data] for k, (actor, data) in self._details.items()},
            signal_seq=self._signal_seq,
            signals_in=self._signals_in,
            children=dict(self._children),
        )
        # the start orders and variables are history now; the snapshot holds the data
        workflow.continue_as_new(dataclasses.replace(self._input, variables={}, resume=state))

    def _uncaught(self, found: runtime.Uncaught) -> None:
        """An error nothing caught fails the instance where it was thrown (SpiffWorkflow would end its
        subprocess as a plain end event and go on); a called instance hands it to its call activity
        by failing with its code. Histories from before ran on, as they did. An escalation nothing
        caught goes to the call activity of a called instance, and nowhere otherwise."""
        if found.escalations and self._input.parent is not None:
            for code in found.escalations:
                self._record("escalation.raised", data={"code": code, "to": self._input.parent.instance_id})
                self._to_others.append(asyncio.create_task(
                    self._return(CallReturn("", self._input.instance_id, "escalated", error_code=code))
                ))  # fmt: skip
        if found.errors and workflow.patched(_UNCAUGHT_PATCH):
            raise _Failure("; ".join(e.description for e in found.errors), code=found.errors[0].code)

    def _before_cut(self) -> bool:
        """A deep task tree is about to lose its finished chain (bpmn/pruning.py): record what those
        tasks did first. Histories recorded before the engine cut trees replay uncut."""
        if not workflow.patched(_PRUNE_PATCH):
            return False
        self._record_transitions()
        return True

    def _apply(self, kind: str, task_id: str, payload: Any) -> None:
        if kind == "sync":
            return  # nothing to apply: an open task changed, and the pass publishes it
        if kind == "signal":
            number, name, variables, actor = payload
            reached = signals.deliver(self._bw, name, variables)
            self._signal_reached[number] = reached
            for caught_by in reached:
                self._record("signal.received", element_id=caught_by, actor=actor,
                             data={"name": name, "variables": variables})  # fmt: skip
            return
        if kind == "variables":
            variables, actor = payload
            self._record("variables.set", actor=actor, data={"variables": variables})
            runtime.set_variables(self._bw, variables)
            return
        if kind == "message" and event_subprocesses.is_start_id(task_id):
            self._message_starts_event_subprocess(task_id, payload)
            return
        task = runtime.task_by_id(self._bw, task_id)
        if task is None:
            return
        if kind == "call_return":
            self._call_returned(task, payload)
        elif kind == "service_result":
            if not runtime.is_started_external_task(task):
                return  # cancelled meanwhile (an interrupting boundary event won the race)
            script = runtime.is_script_task(task)
            self._details[task_id] = (None, None if script else {"result": payload})
            try:
                if script:
                    runtime.complete_script_task(task, payload)
                else:
                    runtime.complete_service_task(task, payload)
            except (ArithmeticError, LookupError, NameError, TypeError, ValueError) as err:
                # an output mapping that does not fit the result: the model's fault, not the engine's
                raise _Failure(
                    f"service task '{runtime.element_id(task)}': its result could not be mapped: "
                    f"{type(err).__name__}: {err}"
                ) from None
        elif kind == "service_failure":
            self._raise_incident(task, payload)
        elif kind == "bpmn_error":
            code, message = payload
            if not runtime.throw_bpmn_error(task, code, message):
                self._raise_incident(task, f"BPMN error '{code}' is not caught by any event: {message}", BPMN_ERROR)
        elif kind == "retry":
            variables, actor = payload
            self._record("incident.retried", element_id=runtime.element_id(task), actor=actor,
                         data={"variables": variables})  # fmt: skip
            task.set_data(**variables)
            self._activities.pop(task_id, None)  # the next reconcile starts a fresh activity
            self._children.pop(task_id, None)  # or a fresh called instance
        elif kind == "message":
            variables, actor, name, key, *rest = payload
            index, element_id = (rest[0], rest[1]) if rest else (None, runtime.element_id(task))
            self._delivered[task_id] = task.has_state(TaskState.WAITING)
            if not self._delivered[task_id]:
                return  # it stopped waiting meanwhile (a boundary event won): the sender is told
            self._record("message.received", element_id=element_id, actor=actor,
                         data={"name": name, "correlation_key": key, "variables": variables})  # fmt: skip
            self._details[task_id] = (actor, {"message": name, "variables": variables})
            messages.deliver(task, variables, index)
        elif kind == "complete":
            variables, actor = payload
            self._details[task_id] = (actor, {"variables": variables})
            if actor is not None:
                self._completers.setdefault(runtime.element_id(task) or "", []).append(actor)
            task.set_data(**variables)
            task.run()
            self._close(task_id, "completed", actor)

    def _message_starts_event_subprocess(self, subscription_id: str, payload: Any) -> None:
        variables, actor, name, key = payload
        listeners = event_subprocesses.listening(self._bw)
        listener = next((s for s in listeners if s.id == subscription_id and s.definition.name == name), None)
        self._delivered[subscription_id] = listener is not None
        if listener is None:
            return  # it stopped listening meanwhile (the process ended, or was interrupted): the sender is told
        self._record("message.received", element_id=listener.element_id, actor=actor,
                     data={"name": name, "correlation_key": key, "variables": variables})  # fmt: skip
        started = event_subprocesses.start(self._bw, listener)
        self._details[str(started.id)] = (actor, {"message": name, "variables": variables})
        messages.deliver(started, variables)

    def _reconcile_activities(self) -> None:
        started = {str(t.id): t for t in runtime.started_external_tasks(self._bw)}  # call activities too
        for task_id, pending in list(self._activities.items()):
            if task_id not in started:
                pending.cancel()  # the task was cancelled, e.g. by an interrupting boundary timer
                del self._activities[task_id]
        for task_id in [t for t in self._children if t not in started]:
            self._cancel_child(task_id, "its call activity was cancelled")
        for incident_id, incident in list(self._incidents.items()):
            if incident.task_id not in started:
                del self._incidents[incident_id]  # resolved by the process itself (boundary event)
        held = {incident.task_id for incident in self._incidents.values()}  # wait for an operator's retry
        in_flight = sum(not pending.done() for pending in self._activities.values())
        for task_id, task in started.items():
            if task_id in self._activities or task_id in held or task_id in self._children:
                continue
            if self._draining or not HistoryBudget.pending_room(in_flight):
                continue  # the next run starts it, or the next pass once others have finished
            length = workflow.info().get_current_history_length()
            if not self._budget.fits(length, in_flight) and self._may_continue():
                continue  # it would write past the ceiling: this run drains and continues as new
            call = self._call_process if call_activities.is_call(task) else self._call_service
            self._activities[task_id] = asyncio.create_task(call(task_id, task))
            in_flight += 1

    # -- call activities ----------------------------------------------------------------------

    async def _call_process(self, task_id: str, task: Any) -> None:
        """Start the called process as a child workflow. It runs on its own and tells this instance's
        current run how it ended (CALL_RETURNED_SIGNAL), so the call may outlive this run (continue
        as new) and the child is abandoned, not cancelled, when a run ends; cancelling the instance or
        the call cancels it explicitly."""
        element_id = runtime.element_id(task) or ""
        dispatch = self._dispatches[task_id] = self._dispatches.get(task_id, 0) + 1
        child_id = str(uuid.uuid5(_CALLS, f"{self._input.instance_id}\x00{task_id}\x00{dispatch}"))
        caller = CallParent(self._input.instance_id, task_id, element_id)
        called = task.task_spec.call
        try:
            variables = runtime.json_safe(call_activities.call_inputs(task))
        except Exception as err:  # the model's input expression over the model's data
            _reraise_temporal(err)
            self._inbox.append(("service_failure", task_id, f"an input mapping failed: {type(err).__name__}: {err}"))
            return
        request = PrepareCallInput(
            caller=caller,
            caller_key=self._input.definition_key,
            caller_version=self._input.version,
            called_key=call_activities.called(task),
            binding=called.binding if called else "latest",
            called_version=called.version if called else None,
            instance_id=child_id,
            variables=variables,
            business_key=self._input.business_key,
            tenant=self._input.tenant,
            history_limit=self._input.history_limit,
        )
        try:
            child: ProcessInput = await workflow.execute_activity(
                PREPARE_CALL_ACTIVITY,
                request,
                result_type=ProcessInput,
                activity_id=f"{task_id}/call-{dispatch}",
                start_to_close_timeout=_SYNC_TIMEOUT,
                retry_policy=_PREPARE_RETRY,
            )
        except ActivityError as err:
            if self._activities.get(task_id) is asyncio.current_task():
                self._inbox.append(("service_failure", task_id, str(err.cause or err)))
            return
        # before the start: the child's answer may be handled before the start resolves
        self._children[task_id] = child_id
        handle = await workflow.start_child_workflow(
            PROCESS_WORKFLOW,
            child,
            id=child_id,
            task_queue=workflow.info().task_queue,
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
        # its answer comes by signal (call_returned); the handle's own outcome is not awaited
        handle.add_done_callback(_outcome_seen)
        self._record("call.started", element_id=element_id, data={
            "instance_id": child_id, "definition_key": child.definition_key, "version": child.version,
        })  # fmt: skip

    def _call_returned(self, task: Any, ret: CallReturn) -> None:
        task_id = str(task.id)
        if not runtime.is_started_external_task(task):
            return  # cancelled meanwhile (a boundary event won the race)
        element_id = runtime.element_id(task)
        data: dict[str, Any] = {"instance_id": ret.instance_id, "status": ret.status}
        if ret.status == "escalated":
            caught = runtime.throw_escalation(task, ret.error_code or "")
            self._record("escalation.received", element_id=element_id,
                         data={**data, "code": ret.error_code, "caught": caught})  # fmt: skip
            return
        self._children.pop(task_id, None)
        if ret.status == "completed":
            self._details[task_id] = (None, {"called": ret.instance_id, "variables": ret.variables})
            self._record("call.completed", element_id=element_id, data={**data, "variables": ret.variables})
            runtime.remember_called(self._bw, ret.completed)
            try:
                call_activities.returned(task, ret.variables, ret.outputs_only)
            except Exception as err:  # an output mapping that does not fit what the called instance left
                _reraise_temporal(err)
                raise _Failure(
                    f"call activity '{element_id}': an output mapping failed: {type(err).__name__}: {err}"
                ) from None
            return
        self._record("call.failed", element_id=element_id, data={**data, "error": ret.error})
        message = f"called instance {ret.instance_id} {ret.status}: {ret.error}"
        if ret.error_code is not None:
            if not runtime.throw_bpmn_error(task, ret.error_code, ret.error or ""):
                self._raise_incident(task, message, BPMN_ERROR)
            return
        self._raise_incident(task, message)

    def call_returned(self, ret: CallReturn) -> None:
        """A called instance ended (or escalated): from the signal handler."""
        if self._children.get(ret.task_id) == ret.instance_id:
            self._inbox.append(("call_return", ret.task_id, ret))

    async def _index_as_called(self) -> None:
        """A called instance's row in the instance index, naming its caller: written by the instance
        itself, so that a listed instance always runs (its caller may be cancelled before it starts)."""
        parent = self._input.parent
        assert parent is not None
        await workflow.execute_activity(
            INDEX_CALLED_ACTIVITY,
            CalledInstanceIndex(
                instance_id=self._input.instance_id,
                definition_key=self._input.definition_key,
                version=self._input.version,
                parent=parent,
                business_key=self._input.business_key,
                tenant=self._input.tenant,
            ),
            start_to_close_timeout=_SYNC_TIMEOUT,
            retry_policy=_PREPARE_RETRY,
        )

    async def _return(self, ret: CallReturn) -> None:
        """Tell the caller (if a call activity started this instance) how it ended. The caller may
        have ended meanwhile: then nobody waits for the answer."""
        parent = self._input.parent
        if parent is None:
            return
        ret.task_id = parent.task_id
        try:
            await workflow.get_external_workflow_handle(parent.instance_id).signal(CALL_RETURNED_SIGNAL, ret)
        except FailureError as err:
            self._record("call.unanswered", data={"caller": parent.instance_id, "error": str(err)})

    def _cancel_child(self, task_id: str, why: str) -> None:
        child_id = self._children.pop(task_id)
        self._record("call.cancelled", data={"instance_id": child_id, "reason": why})
        self._to_others.append(asyncio.create_task(self._cancel_instance(child_id)))

    async def _cancel_instance(self, instance_id: str) -> None:
        with contextlib.suppress(FailureError):  # it ended meanwhile
            await workflow.get_external_workflow_handle(instance_id).cancel()

    async def _call_service(self, task_id: str, task: Any) -> None:
        spec = task.task_spec
        script = runtime.is_script_task(task)
        operator = SCRIPT_ACTIVITY if script else spec.operation_name
        route = self._input.operators.get(operator)
        if route is None:
            self._inbox.append(("service_failure", task_id, f"no route for operator '{operator}'"))
            return
        if not script and spec.activity_options:
            route = dataclasses.replace(route, **spec.activity_options)  # the model's own, for this task
        try:
            params = runtime.script_params(task) if script else runtime.json_safe(runtime.evaluate_params(task))
        except SpiffWorkflowException as err:
            self._inbox.append(("service_failure", task_id, _describe(err)))
            return
        if operator == MESSAGE_PUBLISH_ACTIVITY and params.get("correlation_key") is None:
            params["correlation_key"] = self._input.business_key  # as receivers without a key expression match
        retries = None if script else spec.retries
        attempts = retries + 1 if isinstance(retries, int) else route.max_attempts
        task_queue = route.task_queue
        site = None
        if route.site_param is not None:
            site = params.get(route.site_param)
            if not isinstance(site, str) or re.fullmatch(EDGE_SITE_PATTERN, site) is None:
                self._inbox.append(("service_failure", task_id, (
                    f"parameter '{route.site_param}' must name a site (lower-case letters, digits, - and _), "
                    f"got {site!r}"
                )))  # fmt: skip
                return
            task_queue = f"{route.task_queue}.{site}"
        dispatch = self._dispatches[task_id] = self._dispatches.get(task_id, 0) + 1
        # the first activity of a task is named by the task id; a retry after an incident gets a new id
        activity_id = task_id if dispatch == 1 else f"{task_id}/retry-{dispatch - 1}"
        request = ServiceTaskInput(
            operator=operator,
            params=params,
            instance_id=self._input.instance_id,
            definition_key=self._input.definition_key,
            element_id=spec.bpmn_id,
            task_id=task_id,
            tenant=self._input.tenant,
        )
        try:
            result = await self._run_at_site(task_id, request, task_queue, activity_id, route, attempts, site)
        except ActivityError as err:
            if self._activities.get(task_id) is not asyncio.current_task():
                return  # cancelled by the process (boundary event) or the instance
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == BPMN_ERROR:
                code = str(cause.details[0]) if cause.details else cause.message
                self._inbox.append(("bpmn_error", task_id, (code, cause.message)))
            else:
                self._inbox.append(("service_failure", task_id, str(cause or err)))
            return
        self._inbox.append(("service_result", task_id, result))

    async def _run_at_site(
        self,
        task_id: str,
        request: ServiceTaskInput,
        task_queue: str,
        activity_id: str,
        route: OperatorRoute,
        attempts: int,
        site: str | None,
    ) -> Any:
        """Run the activity; edge first: when no worker of a per-site route's site starts it in time,
        the route's central pool runs it instead, and the audit history says so."""
        try:
            return await self._execute(request.operator, request, task_queue, activity_id, route, attempts)
        except ActivityError as err:
            fallback, fallback_queue = route.fallback_operator, route.fallback_task_queue
            cancelled = self._activities.get(task_id) is not asyncio.current_task()
            if not (_unstarted(err) and fallback and fallback_queue) or cancelled:
                raise
            self._record("service.fallback", element_id=request.element_id, data={
                "operator": request.operator, "site": site, "task_queue": task_queue,
                "fallback_operator": fallback, "fallback_task_queue": fallback_queue,
                "reason": f"no worker of site '{site}' started it within {route.schedule_to_start_seconds:g} s",
            })  # fmt: skip
            return await self._execute(
                fallback, dataclasses.replace(request, operator=fallback), fallback_queue, f"{activity_id}/fallback",
                route, attempts, schedule_to_start=False,
            )  # fmt: skip

    async def _execute(
        self,
        operator: str,
        request: ServiceTaskInput,
        task_queue: str,
        activity_id: str,
        route: OperatorRoute,
        attempts: int,
        *,
        schedule_to_start: bool = True,
    ) -> Any:
        return await workflow.execute_activity(
            operator,
            request,
            task_queue=task_queue,
            activity_id=activity_id,
            start_to_close_timeout=timedelta(seconds=route.start_to_close_seconds),
            schedule_to_close_timeout=_seconds(route.schedule_to_close_seconds),
            # only a per-site route has one, and it is not retried: the fallback takes over
            schedule_to_start_timeout=_seconds(route.schedule_to_start_seconds) if schedule_to_start else None,
            heartbeat_timeout=_seconds(route.heartbeat_seconds),
            retry_policy=RetryPolicy(
                maximum_attempts=attempts,
                initial_interval=timedelta(seconds=route.initial_interval_seconds),
                backoff_coefficient=route.backoff,
            ),
        )

    def _broadcast_thrown(self) -> None:
        """Signals thrown in this pass reached this instance's catchers already (Spiff); send each on
        to the tenant's other instances and to the processes it starts."""
        for thrown in signals.thrown(self._bw):
            payload = runtime.json_safe(thrown.payload)
            self._record("signal.thrown", element_id=thrown.element_id,
                         data={"name": thrown.name, "variables": payload})  # fmt: skip
            self._signal_seq += 1
            request = BroadcastSignalInput(
                name=thrown.name,
                variables=payload,
                origin=f"{self._input.instance_id}/signal-{self._signal_seq}",
                instance_id=self._input.instance_id,
                element_id=thrown.element_id,
                tenant=self._input.tenant,
            )
            self._broadcasts.append(asyncio.create_task(self._broadcast(request, f"signal-{self._signal_seq}")))

    async def _broadcast(self, request: BroadcastSignalInput, activity_id: str) -> None:
        sent: SignalBroadcast = await workflow.execute_activity(
            BROADCAST_SIGNAL_ACTIVITY,
            request,
            result_type=SignalBroadcast,
            activity_id=activity_id,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=_BROADCAST_RETRY,
        )
        self._record("signal.broadcast", element_id=request.element_id, data={
            "name": request.name,
            "delivered": {d.instance_id: d.element_ids for d in sent.delivered},
            "started": [s.instance_id for s in sent.started],
        })  # fmt: skip
        self._inbox.append(("sync", "", None))  # wake the loop: the entry is published with the next pass

    async def _signals_sent(self) -> None:
        """An instance ends only after the signals it threw went out (Temporal would drop an
        activity its workflow no longer waits for)."""
        if self._broadcasts:
            await asyncio.gather(*self._broadcasts)
        if self._to_others:  # and what it told other instances went out (commands of a task not yet
            await asyncio.gather(*self._to_others)  # run would be dropped with the run)

    def _reconcile_human_tasks(self) -> None:
        ready = {str(t.id): t for t in runtime.human_tasks(self._bw)}
        for task_id in list(self._open):
            if task_id not in ready:
                del self._open[task_id]
                if all(closed.id != task_id for closed in self._closed):
                    self._close(task_id, "cancelled", None)
        for task_id, task in ready.items():
            if task_id not in self._open:
                view = runtime.describe_human_task(task)
                # when Spiff made it ready: distinct and ordered even within one workflow task
                opened = datetime.fromtimestamp(task.last_state_change, UTC)
                try:
                    assigned = human_tasks.assignment(task, opened)
                except human_tasks.EvaluationError as err:
                    _reraise_temporal(err)
                    raise _Failure(f"user task '{view.element_id}': {err}") from None
                settings = human_tasks.settings_of(task.task_spec)
                self._open[task_id] = OpenTask(
                    id=view.id,
                    element_id=view.element_id,
                    name=view.name,
                    created_at=opened.isoformat(),
                    element_type=view.element_type,
                    lane=view.lane,
                    documentation=view.documentation,
                    assignee=assigned.assignee,
                    candidate_groups=assigned.candidate_groups,
                    candidate_users=assigned.candidate_users,
                    priority=assigned.priority,
                    due_at=assigned.due_at.isoformat() if assigned.due_at else None,
                    form=settings.form,
                    ui_form=settings.ui_form,
                )

    def _reconcile_subscriptions(self) -> None:
        waits = {w.id: w for w in messages.waiting(self._bw)}
        signal_waits = {w.id: w for w in signals.waiting(self._bw)}
        for task_id in list(self._subscriptions):
            if task_id not in waits and task_id not in signal_waits:
                del self._subscriptions[task_id]
        for task_id, signal_wait in signal_waits.items():
            if task_id not in self._subscriptions:
                self._subscriptions[task_id] = MessageSubscription(
                    task_id=task_id,
                    element_id=signal_wait.element_id,
                    message_name=signal_wait.name,
                    correlation_key=None,
                    created_at=datetime.fromtimestamp(signal_wait.task.last_state_change, UTC).isoformat(),
                    kind="signal",
                )
        for task_id, wait in waits.items():
            if task_id in self._subscriptions:
                continue
            try:
                key = messages.correlation_value(wait)
            except Exception as err:  # the model's expression over the model's data
                _reraise_temporal(err)
                raise _Failure(
                    f"element '{wait.element_id}': its correlation key could not be computed: "
                    f"{type(err).__name__}: {err}"
                ) from None
            self._subscriptions[task_id] = MessageSubscription(
                task_id=task_id,
                element_id=wait.element_id,
                message_name=wait.message_name,
                correlation_key=key if wait.key_expression is not None else self._input.business_key,
                created_at=datetime.fromtimestamp(wait.task.last_state_change, UTC).isoformat(),
            )

    def _record(
        self,
        action: str,
        *,
        element_id: str | None = None,
        element_type: str | None = None,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self._audit_seq += 1
        self._audit.append(
            AuditEntry(
                seq=self._audit_seq,
                at=workflow.now().isoformat(),
                action=action,
                element_id=element_id,
                element_type=element_type,
                actor=actor,
                data=_bounded(data),
            )
        )

    def _record_transitions(self) -> None:
        for change in runtime.transitions(self._bw, self._seen):
            actor, data = (None, None)
            if change.action == "completed":
                actor, data = self._details.pop(change.task_id, (None, None))
            self._record(
                f"element.{change.action}",
                element_id=change.element_id,
                element_type=change.element_type,
                actor=actor,
                data=data,
            )
            if change.action == "completed":
                self._escalate(change.task_id)

    def _escalate(self, boundary_id: str) -> None:
        """A boundary event with escalation settings fired: change the user task it is attached to."""
        boundary = runtime.task_by_id(self._bw, boundary_id)
        escalation = human_tasks.escalation_of(boundary.task_spec) if boundary is not None else None
        if boundary is None or escalation is None or boundary.parent is None:
            return
        for sibling in boundary.parent.children:
            open_task = self._open.get(str(sibling.id))
            if open_task is None:
                continue
            try:
                change = human_tasks.escalate(sibling, escalation)
            except human_tasks.EvaluationError as err:
                _reraise_temporal(err)
                raise _Failure(f"escalation '{runtime.element_id(boundary)}': {err}") from None
            before = {"assignee": open_task.assignee, "candidate_groups": open_task.candidate_groups,
                      "priority": open_task.priority}  # fmt: skip
            if change.assignee is not None or change.unassign:
                open_task.assignee = change.assignee
            if change.candidate_groups is not None:
                open_task.candidate_groups = change.candidate_groups
            if change.candidate_users is not None:
                open_task.candidate_users = change.candidate_users
            if change.priority is not None:
                open_task.priority = change.priority
            open_task.escalated = True
            self._tasks_changed = True
            self._record("task.escalated", element_id=open_task.element_id, data={
                "task_id": open_task.id, "by": runtime.element_id(boundary), "before": before,
                "after": {"assignee": open_task.assignee, "candidate_groups": open_task.candidate_groups,
                          "candidate_users": open_task.candidate_users, "priority": open_task.priority},
            })  # fmt: skip

    def _raise_incident(self, task: Any, message: str, error_type: str | None = None) -> None:
        task_id = str(task.id)
        incident = Incident(
            id=f"{task_id}:{self._dispatches.get(task_id, 0)}",  # one incident per failed dispatch at most
            task_id=task_id,
            element_id=runtime.element_id(task) or "",
            message=message,
            created_at=workflow.now().isoformat(),
            error_type=error_type,
        )
        self._incidents[incident.id] = incident
        self._record("incident.raised", element_id=incident.element_id, data={"message": message, "id": incident.id})

    def _close(self, task_id: str, outcome: str, actor: str | None) -> None:
        self._closed.append(ClosedTask(task_id, outcome, actor, workflow.now().isoformat()))

    async def _publish_tasks(self, *, audit_threshold: int = _AUDIT_BUFFER) -> None:
        """Write the inbox projection when the set of open tasks changed; nothing otherwise.

        A regular activity, not a local one: it is scheduled by the workflow task that opened the
        tasks, so a row reaches the inbox only once that workflow task is saved. (A local activity
        runs inside the workflow task; a worker dying before it is saved would leave a row for a
        task the re-run may decide differently about.) Processes without user tasks never pay it.
        """
        epoch = self._epoch
        incidents_changed = set(self._incidents) != self._published_incidents
        subscriptions_changed = set(self._subscriptions) != self._published_subscriptions
        tasks_changed = set(self._open) != self._published or self._closed or self._tasks_changed
        if tasks_changed or incidents_changed or subscriptions_changed:
            self._tasks_changed = False
            closed, self._closed = self._closed, []
            audit, self._audit = self._audit, []
            await workflow.execute_activity(
                SYNC_TASKS_ACTIVITY,
                SyncTasksInput(
                    instance_id=self._input.instance_id,
                    definition_key=self._input.definition_key,
                    version=self._input.version,
                    open_tasks=list(self._open.values()),
                    closed_tasks=closed,
                    incidents=list(self._incidents.values()),
                    audit=audit,
                    subscriptions=list(self._subscriptions.values()),
                    tenant=self._input.tenant,
                ),
                start_to_close_timeout=_SYNC_TIMEOUT,
            )
            self._published = set(self._open)
            self._published_incidents = set(self._incidents)
            self._published_subscriptions = set(self._subscriptions)
        elif self._audit and len(self._audit) >= audit_threshold:
            # a long run of service tasks with nothing else to publish keeps the buffer bounded; an
            # instance that fails or is cancelled has no result to carry its last entries
            await self._write_audit()
        self._synced_epoch = epoch

    async def _write_audit(self) -> None:
        audit, self._audit = self._audit, []
        await workflow.execute_activity(
            AUDIT_ACTIVITY,
            AuditBatch(
                self._input.instance_id,
                self._input.definition_key,
                self._input.version,
                audit,
                tenant=self._input.tenant,
            ),
            start_to_close_timeout=_SYNC_TIMEOUT,
        )

    async def _wait(self) -> None:
        deadline = runtime.next_timer_deadline(self._bw)
        timeout = None
        if deadline is not None:
            timeout = max(deadline - workflow.now(), timedelta(0)) + _TIMER_SLACK
        with contextlib.suppress(TimeoutError):  # on timeout a timer is due: the next pass fires it
            await workflow.wait_condition(lambda: bool(self._inbox) or self._quiet(), timeout=timeout)

    async def _close_everything(self, outcome: str) -> None:
        for pending in self._activities.values():
            pending.cancel()
        for task_id in list(self._children):
            self._cancel_child(task_id, f"the calling instance was {outcome}")
        if self._to_others:
            await asyncio.gather(*self._to_others)
        for task_id in self._open:
            self._close(task_id, outcome, None)
        self._open.clear()
        self._incidents.clear()
        self._subscriptions.clear()
        await self._publish_tasks(audit_threshold=1)

    # -- user tasks ---------------------------------------------------------------------------

    async def complete_task(self, inp: CompleteTaskInput) -> CompleteTaskResult:
        # Validators of two concurrent updates can both pass before either handler runs: check
        # again here, and take the task out of the open set before yielding, so exactly one wins.
        # (Only openness: who may complete was checked by the validator for this same input, and
        # histories recorded before assignment rules existed must replay as they ran.)
        self._check_open(inp.task_id)
        del self._open[inp.task_id]
        self._inbox.append(("complete", inp.task_id, (dict(inp.variables), inp.actor)))
        await self._until_synced()
        return CompleteTaskResult(inp.task_id, self._status)

    async def retry_incident(self, inp: RetryIncidentInput) -> ProcessState:
        self.check_retry(inp)
        incident = self._incidents.pop(inp.incident_id)  # before yielding: one retry per incident
        self._inbox.append(("retry", incident.task_id, (dict(inp.variables), inp.actor)))
        await self._until_synced()
        return self.state()

    def check_retry(self, inp: RetryIncidentInput) -> None:
        if inp.incident_id not in self._incidents:
            raise ApplicationError(
                f"incident {inp.incident_id} is not open", type=INCIDENT_NOT_OPEN, non_retryable=True
            )
        _check_variables(inp.variables)

    async def set_variables(self, inp: SetVariablesInput) -> ProcessState:
        self.check_set_variables(inp)
        self._inbox.append(("variables", "", (dict(inp.variables), inp.actor)))
        await self._until_synced()
        return self.state()

    def check_set_variables(self, inp: SetVariablesInput) -> None:
        if self._status != "running":
            raise ApplicationError(f"the instance is {self._status}", type=INSTANCE_NOT_RUNNING, non_retryable=True)
        _check_variables(inp.variables)

    async def deliver_message(self, inp: DeliverMessageInput) -> DeliverMessageResult:
        subscription = self.check_message(inp)
        if not self._listens_on(subscription.task_id):
            del self._subscriptions[subscription.task_id]  # before yielding: one message per subscription
        # an event-based gateway's events share its task: "<task id>:<event index>"
        task_id, _, index = subscription.task_id.partition(":")
        payload: tuple[Any, ...] = (dict(inp.variables), inp.actor, inp.name, inp.correlation_key)
        if index:
            payload += (int(index), subscription.element_id)
        self._inbox.append(("message", task_id, payload))
        await self._until_synced()
        if not self._delivered.pop(task_id, False) and self._status == "running":
            raise ApplicationError(
                f"element '{subscription.element_id}' stopped waiting for message '{inp.name}'",
                type=MESSAGE_NOT_WAITING,
                non_retryable=True,
            )
        return DeliverMessageResult(subscription.task_id, subscription.element_id, self._status)

    def _listens_on(self, subscription_id: str) -> bool:
        """A non-interrupting message event subprocess takes every message while its process runs:
        its subscription stays (with the key it opened with) for the next one."""
        if not event_subprocesses.is_start_id(subscription_id):
            return False
        return any(s.id == subscription_id and not s.interrupting for s in event_subprocesses.listening(self._bw))

    def check_message(self, inp: DeliverMessageInput) -> MessageSubscription:
        if self._status != "running":
            raise ApplicationError(f"the instance is {self._status}", type=INSTANCE_NOT_RUNNING, non_retryable=True)
        _check_variables(inp.variables)
        for subscription in self._subscriptions.values():
            if (
                subscription.kind == "message"
                and subscription.message_name == inp.name
                and subscription.correlation_key == inp.correlation_key
            ):
                return subscription
        raise ApplicationError(
            f"no element waits for message '{inp.name}' with correlation key {inp.correlation_key!r}",
            type=MESSAGE_NOT_WAITING,
            non_retryable=True,
        )

    async def deliver_signal(self, inp: DeliverSignalInput) -> DeliverSignalResult:
        self.check_signal(inp)
        self._signals_in += 1
        number = self._signals_in
        self._inbox.append(("signal", "", (number, inp.name, inp.variables, inp.actor)))
        await self._until_synced()
        reached = self._signal_reached.pop(number, [])
        if not reached and self._status == "running":
            raise ApplicationError(
                f"no element waits for signal '{inp.name}' any more", type=SIGNAL_NOT_WAITING, non_retryable=True
            )
        return DeliverSignalResult(reached, self._status)

    def check_signal(self, inp: DeliverSignalInput) -> None:
        if self._status != "running":
            raise ApplicationError(f"the instance is {self._status}", type=INSTANCE_NOT_RUNNING, non_retryable=True)
        if isinstance(inp.variables, dict):
            _check_variables(inp.variables)
        if not any(s.kind == "signal" and s.message_name == inp.name for s in self._subscriptions.values()):
            raise ApplicationError(
                f"no element waits for signal '{inp.name}'", type=SIGNAL_NOT_WAITING, non_retryable=True
            )

    async def _until_synced(self) -> None:
        """Return once the main loop has applied what was queued and published the result."""
        target = self._epoch + 1
        await workflow.wait_condition(lambda: self._synced_epoch >= target or self._status != "running")

    def _check_open(self, task_id: str) -> OpenTask:
        task = self._open.get(task_id)
        if task is None:
            raise ApplicationError(f"task {task_id} is not open", type=TASK_NOT_OPEN, non_retryable=True)
        return task

    def check_completion(self, inp: CompleteTaskInput) -> None:
        task = self._check_open(inp.task_id)
        task_rules.check_complete(task, inp.actor, inp.groups, self._excluded(task))
        _check_variables(inp.variables)
        if task.form is not None:
            problems = forms.validate(self._form(task.form), inp.variables)
            if problems:
                raise ApplicationError(
                    f"task '{task.element_id}': the data does not fit its form: "
                    + "; ".join(f"{'.'.join(map(str, p.loc)) or 'data'}: {p.msg}" for p in problems),
                    [{"loc": list(p.loc), "msg": p.msg} for p in problems],
                    type=INVALID_FORM_DATA,
                    non_retryable=True,
                )

    def _form(self, name: str) -> dict[str, Any]:
        if name not in self._forms:
            self._forms[name] = forms.load(name, self._input.files[name]).schema
        return self._forms[name]

    def _excluded(self, task: OpenTask) -> dict[str, str]:
        """Four-eyes: who may not work `task`, and why."""
        spiff_task = runtime.task_by_id(self._bw, task.id)
        if spiff_task is None:
            return {}
        excluded: dict[str, str] = {}
        for rule in human_tasks.settings_of(spiff_task.task_spec).separate_from:
            if rule == human_tasks.STARTER:
                if self._input.started_by:
                    excluded.setdefault(self._input.started_by, "started this instance")
            else:
                for actor in self._completers.get(rule, []):
                    excluded.setdefault(actor, f"completed task '{rule}' of this instance")
        return excluded

    async def assign_task(self, inp: AssignTaskInput) -> TaskAssigned:
        # Applied before yielding, so of two concurrent claims the second sees the first's claim.
        self.check_assignment(inp)
        task = self._open[inp.task_id]
        before = task.assignee
        if inp.action == "claim":
            task.assignee = inp.actor
        elif inp.action == "unclaim":
            task.assignee = None
        else:
            task.assignee = inp.assignee
        if task.assignee != before:
            data: dict[str, Any] = {"task_id": task.id, "assignee": task.assignee, "previous": before}
            self._record(f"task.{inp.action}ed", element_id=task.element_id, actor=inp.actor, data=data)
            self._tasks_changed = True
            self._inbox.append(("sync", "", None))  # wakes the main loop, which publishes the change
            await self._until_synced()
        return TaskAssigned(dataclasses.replace(task))

    def check_assignment(self, inp: AssignTaskInput) -> None:
        task = self._check_open(inp.task_id)
        task_rules.check_assignment(task, inp, self._excluded(task))

    def state(self) -> ProcessState:
        return ProcessState(
            status=self._status,
            variables=runtime.variables(self._bw),
            active=runtime.active_elements(self._bw),
            completed=runtime.completed_elements(self._bw),
            open_tasks=list(self._open.values()),
            error=self._error,
            incidents=list(self._incidents.values()),
        )


def _bounded(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    safe: dict[str, Any] = runtime.json_safe(data)
    text = json.dumps(safe, sort_keys=True)
    if len(text) <= _AUDIT_DATA_LIMIT:
        return safe
    return {"truncated": text[:_AUDIT_DATA_LIMIT], "size": len(text)}


def _check_variables(variables: dict[str, Any]) -> None:
    try:
        runtime.check_variables(variables)
    except ValueError as err:
        raise ApplicationError(str(err), type=INVALID_VARIABLES, non_retryable=True) from None


def _outcome_seen(done: asyncio.Future[Any]) -> None:
    if not done.cancelled():
        done.exception()  # taken, so that asyncio does not log a failed child as an error nobody saw


def _unstarted(err: ActivityError) -> bool:
    """No worker started the activity within its schedule-to-start timeout."""
    cause = err.cause
    return isinstance(cause, ActivityTimeout) and cause.type == TimeoutType.SCHEDULE_TO_START


def _seconds(value: float | None) -> timedelta | None:
    return timedelta(seconds=value) if value is not None else None


def _reraise_temporal(err: BaseException) -> None:
    """Spiff wraps every exception a script raises; Temporal's own must not become BPMN errors."""
    cause: BaseException | None = err
    while cause is not None:
        if type(cause).__module__.startswith("temporalio"):
            raise cause
        cause = cause.__cause__ or getattr(cause, "exception", None)


def _describe(err: SpiffWorkflowException) -> str:
    task = getattr(err, "task", None)
    spec = getattr(task, "task_spec", None) or getattr(err, "task_spec", None)
    element = getattr(spec, "bpmn_id", None)
    line = getattr(err, "line_number", None)
    where = f"element '{element}'" if element else "the process"
    detail = f" (line {line} of its script)" if line else ""
    notes = "; ".join(getattr(err, "__notes__", []))
    message = str(err.args[0]) if err.args else type(err).__name__
    cause = err.__cause__ or getattr(err, "exception", None) or err.__context__
    if cause is not None and str(cause) not in message:
        message = f"{message}: {type(cause).__name__}: {cause}"  # what went wrong, not only where
    return f"{where}{detail}: {message}" + (f" [{notes}]" if notes else "")
