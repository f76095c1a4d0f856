"""The contract between the API, the workflows and the worker pools.

Dependency-free on purpose: the API, every worker and the workflow sandbox import it. One
dataclass per workflow, activity, query and update, so fields can be added without breaking
running workflows; names are constants so no call site spells them twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ENGINE_TASK_QUEUE = "engine"
CONNECTOR_TASK_QUEUE = "connector"
SANDBOX_TASK_QUEUE = "sandbox"
GPU_TASK_QUEUE = "gpu"
TWIN_TASK_QUEUE = "twin"
# The edge pool has a task queue per site: `edge.<site>`, polled by the edge workers of that site.
EDGE_TASK_QUEUE_PREFIX = "edge"
EDGE_SITE_PATTERN = r"[a-z0-9][a-z0-9_-]{0,62}"

PROCESS_WORKFLOW = "ProcessWorkflow"
SYNC_TASKS_ACTIVITY = "engine.sync_tasks"
AUDIT_ACTIVITY = "engine.audit"
HTTP_REQUEST_ACTIVITY = "http.request"
# Script tasks run here: params {"script", "data"} → {"data"}, in a resource-limited child process.
SCRIPT_ACTIVITY = "sandbox.script"
GPU_CLASSIFY_ACTIVITY = "gpu.classify"
GPU_EMBED_ACTIVITY = "gpu.embed"
GPU_SIMILARITY_ACTIVITY = "gpu.similarity"
GPU_OPERATIONS = frozenset({"classify", "embed", "similarity"})
EDGE_CLASSIFY_ACTIVITY = "edge.classify"
EDGE_EMBED_ACTIVITY = "edge.embed"
EDGE_SIMILARITY_ACTIVITY = "edge.similarity"
EDGE_OPERATIONS = GPU_OPERATIONS  # the same operations, on an int8 model near the data
# The digital twin: simulate a deployed definition (params: workers/twin/request.py); a service task
# calls it as an operator, and the API through SIMULATION_WORKFLOW, both on the twin pool.
TWIN_SIMULATE_ACTIVITY = "twin.simulate"
SIMULATION_WORKFLOW = "TwinSimulationWorkflow"
# Timer start events: a Temporal Schedule per definition key starts TIMER_START_WORKFLOW, whose one
# activity starts (and indexes) an instance of the key's latest version, as POST /instances would.
TIMER_START_WORKFLOW = "TimerStartWorkflow"
START_SCHEDULED_ACTIVITY = "engine.start_scheduled"
# A signal thrown in an instance reaches the other instances and the signal start events
# (BroadcastSignalInput → SignalBroadcast), from the engine worker.
BROADCAST_SIGNAL_ACTIVITY = "engine.broadcast_signal"
# Send tasks and message throw and end events: ServiceTaskInput with params name, correlation_key,
# variables → the receipt {message, correlation_key, delivered, started}, on the engine queue.
MESSAGE_PUBLISH_ACTIVITY = "message.publish"
# A call activity: resolve the called definition (PrepareCallInput → the child's ProcessInput), on the
# engine queue; the caller then starts it as a child workflow.
PREPARE_CALL_ACTIVITY = "engine.prepare_call"
# A called instance indexes itself first thing (CalledInstanceIndex), once its workflow exists.
INDEX_CALLED_ACTIVITY = "engine.index_called"
# A called instance that ended tells its caller's current run (CallReturn): a signal, not the child
# workflow's result, because the caller may have continued as new since it started the call.
CALL_RETURNED_SIGNAL = "call_returned"

STATE_QUERY = "state"
COMPLETE_TASK_UPDATE = "complete_task"
# claim, unclaim or assign a user task (AssignTaskInput → TaskAssigned)
ASSIGN_TASK_UPDATE = "assign_task"
RETRY_INCIDENT_UPDATE = "retry_incident"
SET_VARIABLES_UPDATE = "set_variables"
DELIVER_MESSAGE_UPDATE = "deliver_message"
DELIVER_SIGNAL_UPDATE = "deliver_signal"

# ApplicationError types the API maps to HTTP statuses.
TASK_NOT_OPEN = "TaskNotOpen"
TASK_FORBIDDEN = "TaskForbidden"  # not the assignee nor a candidate, or four-eyes: HTTP 403
TASK_CLAIMED = "TaskClaimed"  # someone else holds it: HTTP 409
# completion data that fails the task's form; details[0] is [{"loc": [...], "msg": ...}]: HTTP 422
INVALID_FORM_DATA = "InvalidFormData"
INCIDENT_NOT_OPEN = "IncidentNotOpen"
INSTANCE_NOT_RUNNING = "InstanceNotRunning"
MESSAGE_NOT_WAITING = "MessageNotWaiting"
SIGNAL_NOT_WAITING = "SignalNotWaiting"
# A worker raises ApplicationError(message, code, type=BPMN_ERROR, non_retryable=True) to throw the
# BPMN error `code` at the service task: an error boundary event catches it, as in Camunda.
BPMN_ERROR = "BpmnError"
INVALID_VARIABLES = "InvalidVariables"
MODEL_ERROR = "ModelError"
SERVICE_TASK_FAILED = "ServiceTaskFailed"
SCRIPT_FAILED = "ScriptFailed"  # the script raised, or broke a limit: an incident, never retried


@dataclass
class OperatorRoute:
    """Where and how a service task's activity runs. Resolved when the instance starts and carried
    in its input, so a worker whose pool configuration differs still replays it identically."""

    task_queue: str
    start_to_close_seconds: float
    schedule_to_close_seconds: float | None = None
    heartbeat_seconds: float | None = None
    max_attempts: int = 3
    initial_interval_seconds: float = 1.0
    backoff: float = 2.0
    # Per-site pools (edge): the activity goes to `<task_queue>.<site>`, the site being the service
    # task's parameter of this name.
    site_param: str | None = None
    schedule_to_start_seconds: float | None = None
    # When no worker starts the activity within schedule_to_start (no worker of that site is up),
    # this operator runs it on this queue instead, and the audit history says so.
    fallback_operator: str | None = None
    fallback_task_queue: str | None = None


def edge_task_queue(site: str) -> str:
    return f"{EDGE_TASK_QUEUE_PREFIX}.{site}"


@dataclass
class ProcessInput:
    instance_id: str
    definition_key: str
    version: int
    definition_hash: str
    files: dict[str, str]
    variables: dict[str, Any] = field(default_factory=dict)
    business_key: str | None = None
    started_by: str | None = None
    operators: dict[str, OperatorRoute] = field(default_factory=dict)
    # the message start event that starts it; its variables are `variables`
    start_message: str | None = None
    tenant: str | None = None
    # the timer start event whose schedule started it (element id): fired at once, the others withdrawn
    start_timer: str | None = None
    # Camunda 8's `=` expressions are FEEL (bpmn/feel.py); False in the inputs of instances started
    # before FEEL was read, whose `=` expressions were Python: they replay as they ran
    feel: bool = False
    # the signal start event that starts it; the signal's variables are `variables`
    start_signal: str | None = None
    # A run continues as new once its history reaches this many events (None: the engine's default,
    # workflows/history_budget.py), so no run's history nears Temporal's limits.
    history_limit: int | None = None
    # ... or this many bytes (None: the default, 8 MiB); tests set it low to drain a run by size
    history_size_limit: int | None = None
    # Set by the run before, when this run continues an instance: where it was (the start event and
    # the variables above are then history, not orders).
    resume: EngineSnapshot | None = None
    # Set when a call activity started it: the instance tells that caller how it ended.
    parent: CallParent | None = None


@dataclass
class CallParent:
    instance_id: str  # the caller's workflow id: the signal reaches its current run
    task_id: str  # the call activity's Spiff task
    element_id: str


@dataclass
class PrepareCallInput:
    caller: CallParent
    caller_key: str
    caller_version: int
    called_key: str
    binding: str  # latest | deployment | version
    called_version: int | None
    instance_id: str  # the called instance's id, derived from the call: a retried activity names it again
    variables: dict[str, Any]
    business_key: str | None = None
    tenant: str | None = None
    history_limit: int | None = None


@dataclass
class CalledInstanceIndex:
    instance_id: str
    definition_key: str
    version: int
    parent: CallParent
    business_key: str | None = None
    tenant: str | None = None


@dataclass
class CallReturn:
    task_id: str
    instance_id: str  # the called instance
    status: str  # completed | failed | cancelled
    variables: dict[str, Any] = field(default_factory=dict)
    outputs_only: bool = False  # only declared data outputs: merged into the caller's data, not replacing it
    completed: list[str] = field(default_factory=list)  # elements the called instance completed
    error: str | None = None
    error_code: str | None = None  # a BPMN error nothing caught in the called instance


@dataclass
class EngineSnapshot:
    """What one run of an instance hands the next when it continues as new: SpiffWorkflow's state
    (bpmn/snapshot.py) and the engine's own bookkeeping, so the next run goes on as if it were the
    same one: the same task ids, audit numbering, open tasks and incidents, nothing published twice."""

    spiff: str
    run: int  # runs before this one
    open_tasks: list[OpenTask] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    subscriptions: list[MessageSubscription] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)  # task id → last transition recorded
    audit_seq: int = 0
    dispatches: dict[str, int] = field(default_factory=dict)
    completers: dict[str, list[str]] = field(default_factory=dict)
    details: dict[str, list[Any]] = field(default_factory=dict)  # task id → [actor, data]
    signal_seq: int = 0
    signals_in: int = 0
    children: dict[str, str] = field(default_factory=dict)  # call activity task id → called instance id


@dataclass
class TimerStartInput:
    """What a definition's schedule passes to each run of TIMER_START_WORKFLOW."""

    definition_key: str
    element_id: str  # the timer start event
    tenant: str | None = None


@dataclass
class ScheduledStart:
    definition_key: str
    element_id: str
    tenant: str | None
    fired_id: str  # the schedule's workflow id for this firing: the instance id derives from it


@dataclass
class OpenTask:
    id: str
    element_id: str
    name: str
    created_at: str
    element_type: str = "userTask"
    lane: str | None = None
    documentation: str | None = None
    # Who may work it (bpmn/human_tasks.py): the assignee alone once set; before that any candidate
    # user or member of a candidate group; anyone who works tasks when it names no one at all.
    assignee: str | None = None
    candidate_groups: list[str] = field(default_factory=list)
    candidate_users: list[str] = field(default_factory=list)
    priority: int = 50
    due_at: str | None = None
    form: str | None = None  # the deployed form file its completion is validated against
    ui_form: str | None = None
    escalated: bool = False


@dataclass
class ClosedTask:
    id: str
    outcome: str  # completed | cancelled
    actor: str | None = None
    closed_at: str | None = None


@dataclass
class Incident:
    """A service task whose retries are exhausted: it waits for an operator, the instance runs on."""

    id: str
    task_id: str
    element_id: str
    message: str
    created_at: str
    error_type: str | None = None


@dataclass
class AuditEntry:
    """One thing that happened in an instance, numbered in order (`seq`) by the workflow itself, so
    writing it twice (activities run at least once) stores it once."""

    seq: int
    at: str
    action: str  # element.entered | element.completed | element.cancelled | task.completed | incident...
    element_id: str | None = None
    element_type: str | None = None
    actor: str | None = None
    data: dict[str, Any] | None = None


@dataclass
class MessageSubscription:
    """An element waiting for a message; the API finds instances to deliver to through these."""

    task_id: str
    element_id: str
    message_name: str  # the signal's name for a signal
    correlation_key: str | None
    created_at: str
    kind: str = "message"  # message | signal (signals have no correlation key: they reach every waiter)


@dataclass
class SyncTasksInput:
    instance_id: str
    definition_key: str
    version: int
    open_tasks: list[OpenTask]
    closed_tasks: list[ClosedTask]
    incidents: list[Incident] = field(default_factory=list)  # every open incident of the instance
    audit: list[AuditEntry] = field(default_factory=list)
    subscriptions: list[MessageSubscription] = field(default_factory=list)  # every open one
    tenant: str | None = None


@dataclass
class AuditBatch:
    instance_id: str
    definition_key: str
    version: int
    entries: list[AuditEntry]
    tenant: str | None = None


@dataclass
class DeliverMessageInput:
    name: str
    correlation_key: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    actor: str | None = None


@dataclass
class DeliverMessageResult:
    task_id: str
    element_id: str
    instance_status: str


@dataclass
class DeliverSignalInput:
    name: str
    variables: Any = field(default_factory=dict)  # a payload expression may give a non-dict
    actor: str | None = None


@dataclass
class DeliverSignalResult:
    element_ids: list[str]  # every element of the instance it reached
    instance_status: str


@dataclass
class BroadcastSignalInput:
    """A signal thrown by `element_id` of `instance_id`, for the instances of its tenant and the
    processes it starts. `origin` names this throw: instances it starts derive their ids from it, so a
    retried broadcast starts nothing twice."""

    name: str
    variables: Any
    origin: str
    instance_id: str | None = None
    element_id: str | None = None
    tenant: str | None = None


@dataclass
class SignalDelivered:
    instance_id: str
    element_ids: list[str]


@dataclass
class SignalStarted:
    instance_id: str
    definition_key: str
    version: int


@dataclass
class SignalBroadcast:
    delivered: list[SignalDelivered] = field(default_factory=list)
    started: list[SignalStarted] = field(default_factory=list)


@dataclass
class CompleteTaskInput:
    task_id: str
    variables: dict[str, Any] = field(default_factory=dict)
    actor: str | None = None
    groups: list[str] = field(default_factory=list)  # the actor's groups, for candidate groups


@dataclass
class AssignTaskInput:
    task_id: str
    action: str  # claim | unclaim | assign
    actor: str
    groups: list[str] = field(default_factory=list)  # the actor's groups
    assignee: str | None = None  # assign: the new assignee, None to release the task
    # the caller may act on tasks held by others (operator role): unclaim them, assign them
    operator: bool = False


@dataclass
class TaskAssigned:
    task: OpenTask


@dataclass
class CompleteTaskResult:
    task_id: str
    instance_status: str


@dataclass
class RetryIncidentInput:
    incident_id: str
    variables: dict[str, Any] = field(default_factory=dict)
    actor: str | None = None


@dataclass
class SetVariablesInput:
    variables: dict[str, Any]
    actor: str | None = None


@dataclass
class ServiceTaskInput:
    operator: str
    params: dict[str, Any]
    instance_id: str
    definition_key: str
    element_id: str
    task_id: str
    tenant: str | None = None  # the instance's tenant: what a pool may read on its behalf


@dataclass
class ProcessState:
    status: str  # running | completed | failed | cancelled
    variables: dict[str, Any]
    active: list[str]
    completed: list[str]
    open_tasks: list[OpenTask] = field(default_factory=list)
    error: str | None = None
    incidents: list[Incident] = field(default_factory=list)


@dataclass
class ProcessResult:
    status: str
    variables: dict[str, Any]
    completed: list[str]
    # Audit entries not yet written when the instance ended: the result is recorded in the history
    # anyway, so they cost no extra event; the API's status projector stores them.
    audit: list[AuditEntry] = field(default_factory=list)
