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

PROCESS_WORKFLOW = "ProcessWorkflow"
SYNC_TASKS_ACTIVITY = "engine.sync_tasks"
HTTP_REQUEST_ACTIVITY = "http.request"

STATE_QUERY = "state"
COMPLETE_TASK_UPDATE = "complete_task"

# ApplicationError types the API maps to HTTP statuses.
TASK_NOT_OPEN = "TaskNotOpen"
INVALID_VARIABLES = "InvalidVariables"
MODEL_ERROR = "ModelError"
SERVICE_TASK_FAILED = "ServiceTaskFailed"


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


@dataclass
class OpenTask:
    id: str
    element_id: str
    name: str
    created_at: str
    element_type: str = "userTask"
    lane: str | None = None
    documentation: str | None = None


@dataclass
class ClosedTask:
    id: str
    outcome: str  # completed | cancelled
    actor: str | None = None
    closed_at: str | None = None


@dataclass
class SyncTasksInput:
    instance_id: str
    definition_key: str
    version: int
    open_tasks: list[OpenTask]
    closed_tasks: list[ClosedTask]


@dataclass
class CompleteTaskInput:
    task_id: str
    variables: dict[str, Any] = field(default_factory=dict)
    actor: str | None = None


@dataclass
class CompleteTaskResult:
    task_id: str
    instance_status: str


@dataclass
class ServiceTaskInput:
    operator: str
    params: dict[str, Any]
    instance_id: str
    definition_key: str
    element_id: str
    task_id: str


@dataclass
class ProcessState:
    status: str  # running | completed | failed | cancelled
    variables: dict[str, Any]
    active: list[str]
    completed: list[str]
    open_tasks: list[OpenTask] = field(default_factory=list)
    error: str | None = None


@dataclass
class ProcessResult:
    status: str
    variables: dict[str, Any]
    completed: list[str]
