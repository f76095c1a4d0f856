"""Request and response bodies of the REST API."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from bpmn.runtime import check_variables


def _valid_names(variables: dict[str, Any]) -> dict[str, Any]:
    check_variables(variables)  # its ValueError becomes a 422 naming the field
    try:
        # 1e999 parses as infinity, which no JSON (nor Temporal's payloads) can carry back out
        json.dumps(variables, allow_nan=False)
    except ValueError:
        raise ValueError("variables must be finite JSON numbers (no Infinity or NaN)") from None
    return variables


# The largest integer a request may carry where it meets an INTEGER column (PostgreSQL's is 32-bit):
# a larger one is a 422 naming the field, not a database overflow.
DB_INT_MAX = 2**31 - 1

# Process variables in a request: their names become names in model code, so they are checked here,
# once, for every endpoint that takes them (the workflow checks again for callers that bypass the API).
Variables = Annotated[dict[str, Any], AfterValidator(_valid_names)]


class DefinitionPublic(BaseModel):
    key: str
    version: int
    hash: str
    name: str


class DeploymentPublic(BaseModel):
    definitions: list[DefinitionPublic]


class DefinitionVersionPublic(DefinitionPublic):
    deployed_at: datetime


class DefinitionVersions(BaseModel):
    key: str
    name: str
    versions: list[DefinitionVersionPublic]


class InstanceCreate(BaseModel):
    definition_key: str = Field(min_length=1, max_length=255)
    version: int | None = Field(default=None, ge=1, le=DB_INT_MAX)
    variables: Variables = Field(default_factory=dict)
    business_key: str | None = Field(default=None, max_length=255)


class InstanceCreated(BaseModel):
    id: str
    definition_key: str
    version: int
    status: str


class IncidentPublic(BaseModel):
    id: str
    instance_id: str
    element_id: str
    message: str
    error_type: str | None = None
    state: str = "open"
    created_at: datetime


class IncidentRetry(BaseModel):
    variables: Variables = Field(default_factory=dict, description="set on the task before it runs again")


class VariablesUpdate(BaseModel):
    variables: Variables = Field(min_length=1)


class InstanceSummary(BaseModel):
    id: str
    definition_key: str
    version: int
    business_key: str | None
    status: str
    started_at: datetime
    started_by: str | None
    closed_at: datetime | None
    parent_id: str | None = Field(default=None, description="the instance whose call activity started it")
    parent_element_id: str | None = Field(default=None, description="that call activity")


class InstancePage(BaseModel):
    items: list[InstanceSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class InstancePublic(BaseModel):
    id: str
    definition_key: str
    version: int
    business_key: str | None
    status: str
    variables: dict[str, Any]
    active: list[str]
    completed: list[str]
    error: str | None = None
    incidents: list[IncidentPublic] = Field(default_factory=list)
    parent_id: str | None = Field(default=None, description="the instance whose call activity started it")
    parent_element_id: str | None = Field(default=None, description="that call activity")


class TaskPublic(BaseModel):
    id: str
    instance_id: str
    definition_key: str
    version: int
    element_id: str
    element_type: str
    name: str
    lane: str | None
    state: str = Field(description="open | completed | cancelled")
    created_at: datetime
    documentation: str | None = None
    assignee: str | None = Field(default=None, description="who holds it; only they may complete it")
    candidate_groups: list[str] = Field(
        default_factory=list, description="members of these groups may claim or complete it while unassigned"
    )
    candidate_users: list[str] = Field(default_factory=list)
    priority: int = Field(default=50, description="0..100, higher first")
    due_at: datetime | None = None
    has_form: bool = Field(default=False, description="GET /tasks/{id}/form gives its JSON Schema")
    escalated: bool = Field(default=False, description="an escalation timer fired on it")
    closed_by: str | None = None
    closed_at: datetime | None = None


class TaskForm(BaseModel):
    task_id: str
    file: str = Field(description="the deployed form file")
    schema_: dict[str, Any] = Field(alias="schema", description="JSON Schema the completion data must fit")
    ui_schema: dict[str, Any] | None = None

    model_config = {"populate_by_name": True}


class TaskAssign(BaseModel):
    assignee: str | None = Field(max_length=255, description="the user to hold the task; null releases it")


class Me(BaseModel):
    subject: str
    roles: list[str]
    groups: list[str]
    tenant: str | None


class TaskComplete(BaseModel):
    variables: Variables = Field(default_factory=dict)


class TaskCompleted(BaseModel):
    id: str
    instance_id: str
    instance_status: str


class MessagePublish(BaseModel):
    name: str = Field(min_length=1, max_length=255, description="the `name` of the BPMN message")
    correlation_key: str | None = Field(
        default=None,
        max_length=255,
        description="matches the value of the message's `zeebe:subscription correlationKey` expression in "
        "the waiting instance, or its business key when the message has none; a message that starts a "
        "process gives the new instance this business key",
    )
    variables: Variables = Field(default_factory=dict, description="merged into the receiving instance")


class MessageDelivered(BaseModel):
    instance_id: str
    element_id: str


class MessageStarted(BaseModel):
    instance_id: str
    definition_key: str
    version: int


class SignalBroadcastRequest(BaseModel):
    name: str = Field(min_length=1, max_length=255, description="the `name` of the BPMN signal")
    variables: Variables = Field(
        default_factory=dict,
        description="the signal's variables: merged into each catching instance (or stored in the signal's "
        "`spiffworkflow:variableName`), and the start variables of each instance it starts",
    )


class SignalDeliveredTo(BaseModel):
    instance_id: str
    element_ids: list[str] = Field(description="every element of the instance that caught it")


class SignalReceipt(BaseModel):
    name: str
    delivered: list[SignalDeliveredTo] = Field(description="waiting instances that caught it")
    started: list[MessageStarted] = Field(description="instances started by a signal start event")


class MessageReceipt(BaseModel):
    name: str
    correlation_key: str | None
    delivered: list[MessageDelivered] = Field(description="waiting instances that received it, one element each")
    started: list[MessageStarted] = Field(description="instances started by a message start event")
