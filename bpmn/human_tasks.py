"""Who works a user task, by when, with which form, and what happens when it is late.

Read from the model as each modeller writes it:
- Camunda 8 (Camunda Modeler): `zeebe:assignmentDefinition` (assignee, candidateGroups,
  candidateUsers), `zeebe:taskSchedule dueDate`, `zeebe:priorityDefinition priority`,
  `zeebe:formDefinition formId` (a `.form` file deployed beside the model); values starting with
  `=` are FEEL expressions (bpmn/feel.py).
- Camunda 7: `camunda:assignee`, `camunda:candidateGroups`, `camunda:candidateUsers`,
  `camunda:dueDate`, `camunda:priority`, `camunda:formKey`; `${...}` / `#{...}` are expressions.
- SpiffArena: `spiffworkflow:formJsonSchemaFilename` / `formUiSchemaFilename`, and properties.
- Properties (`spiffworkflow:`, `zeebe:` or `camunda:properties`) for the rest:
  `aimatrix.assignee`, `aimatrix.candidateGroups`, `aimatrix.candidateUsers`, `aimatrix.priority`,
  `aimatrix.dueDate`, `aimatrix.form` and `aimatrix.separateFrom` (four-eyes: `starter` and/or ids
  of earlier tasks whose completer may not complete this one); `=` starts a Python expression here,
  as in SpiffArena's scripts and conditions.
- The lane a task sits in is its candidate group when nothing else names one.

Escalation: a boundary timer on a user task with `aimatrix.escalate.assignee`,
`aimatrix.escalate.candidateGroups`, `aimatrix.escalate.candidateUsers` or
`aimatrix.escalate.priority` properties changes the task when it fires (non-interrupting: the task
stays open, reassigned; its outgoing flow can notify someone).

Expressions are the model's code: checked at deploy, evaluated over the process data by the
restricted evaluator when the task opens, like every other expression of the model.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from lxml import etree

from bpmn import feel

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
_NS = {"bpmn": BPMN_NS, "zeebe": ZEEBE_NS, "camunda": CAMUNDA_NS, "spiffworkflow": SPIFF_NS}

DEFAULT_PRIORITY = 50  # Camunda 8's default, on its 0..100 scale
STARTER = "starter"
_HUMAN_TAGS = ("userTask", "manualTask")
_JUEL = re.compile(r"^\s*[$#]\{(.*)\}\s*$", re.DOTALL)
_ISO_DURATION = re.compile(
    r"^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


class SettingsError(ValueError):
    """A setting of the element cannot work; the message names the setting."""

    def __init__(self, element_id: str, line: int | None, message: str) -> None:
        super().__init__(message)
        self.element_id = element_id
        self.line = line


@dataclass(frozen=True)
class Setting:
    """A value from the model: a Python expression over the process data, or a literal."""

    name: str  # where it came from, for messages: e.g. "zeebe:assignmentDefinition assignee"
    expression: str | None = None
    literal: str | None = None


@dataclass(frozen=True)
class HumanTaskSettings:
    assignee: Setting | None = None
    candidate_groups: Setting | None = None
    candidate_users: Setting | None = None
    priority: Setting | None = None
    due_date: Setting | None = None
    form: str | None = None  # a deployed form file's name
    form_id: str | None = None  # a Camunda form's id, resolved to a file at deploy
    ui_form: str | None = None
    separate_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class Escalation:
    assignee: Setting | None = None
    candidate_groups: Setting | None = None
    candidate_users: Setting | None = None
    priority: Setting | None = None


@dataclass
class ModelHumanSettings:
    """What one BPMN file says about its user tasks and escalation timers, by element id."""

    tasks: dict[str, HumanTaskSettings] = field(default_factory=dict)
    escalations: dict[str, Escalation] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)


def _value(name: str, raw: str | None, *, style: str) -> Setting | None:
    """`style`: zeebe ('=FEEL'), aimatrix ('=Python expression'), camunda ('${expr}'), or literal."""
    if raw is None:
        return None
    text = raw.strip()
    if style == "zeebe" and text.startswith("="):
        try:
            return Setting(name, expression=feel.to_python(text[1:]))  # Camunda 8: FEEL
        except feel.FeelError as err:
            raise ValueError(f"{name}: FEEL {text!r}: {err}") from None
    if style == "aimatrix" and text.startswith("="):
        return Setting(name, expression=text[1:].strip())  # SpiffArena's way: Python, as its scripts
    if style == "camunda":
        match = _JUEL.match(text)
        if match:
            return Setting(name, expression=match.group(1).strip())
        if "${" in text or "#{" in text:
            raise ValueError(f"{name}: only a whole-value expression ${{...}} is supported, got {text!r}")
    return Setting(name, literal=text)


def _properties(node: etree._Element) -> dict[str, str]:
    found: dict[str, str] = {}
    for prefix in ("spiffworkflow", "zeebe", "camunda"):
        for prop in node.xpath(f"./bpmn:extensionElements/{prefix}:properties/{prefix}:property", namespaces=_NS):
            name, value = prop.get("name"), prop.get("value")
            if name is not None and value is not None:
                found[name] = value
    return found


def read(root: etree._Element, *, feel: bool = True) -> ModelHumanSettings:
    """The settings of every user task and escalation timer in a BPMN document. Raises
    SettingsError for a value that cannot be read."""
    model = ModelHumanSettings()
    lanes = {
        ref.text.strip(): lane.get("name") or lane.get("id")
        for lane in root.iter(f"{{{BPMN_NS}}}lane")
        for ref in lane.findall(f"{{{BPMN_NS}}}flowNodeRef")
        if ref.text
    }
    for tag in _HUMAN_TAGS:
        for node in root.iter(f"{{{BPMN_NS}}}{tag}"):
            element_id = node.get("id", "")
            model.lines[element_id] = node.sourceline or 0
            try:
                model.tasks[element_id] = _task_settings(node, lanes.get(element_id), feel)
            except ValueError as err:
                raise SettingsError(element_id, node.sourceline, str(err)) from None
    for node in root.iter(f"{{{BPMN_NS}}}boundaryEvent"):
        props = {k: v for k, v in _properties(node).items() if k.startswith("aimatrix.escalate.")}
        if not props:
            continue
        element_id = node.get("id", "")
        model.lines[element_id] = node.sourceline or 0
        if node.get("attachedToRef") not in model.tasks:
            raise SettingsError(
                element_id,
                node.sourceline,
                "aimatrix.escalate.* settings belong on a boundary "
                f"event of a user task; it is attached to '{node.get('attachedToRef')}'",
            )
        try:
            model.escalations[element_id] = _escalation(node, props)
        except ValueError as err:
            raise SettingsError(element_id, node.sourceline, str(err)) from None
    return model


def _task_settings(node: etree._Element, lane: str | None, feel: bool) -> HumanTaskSettings:
    values: dict[str, Setting | None] = {}
    props = _properties(node)
    for key, prop in (("assignee", "assignee"), ("candidate_groups", "candidateGroups"),
                      ("candidate_users", "candidateUsers"), ("priority", "priority"),
                      ("due_date", "dueDate")):  # fmt: skip
        values[key] = _value(f"property aimatrix.{prop}", props.get(f"aimatrix.{prop}"), style="aimatrix")
    for key, attribute in (("assignee", "assignee"), ("candidate_groups", "candidateGroups"),
                           ("candidate_users", "candidateUsers"), ("priority", "priority"),
                           ("due_date", "dueDate")):  # fmt: skip
        raw = node.get(f"{{{CAMUNDA_NS}}}{attribute}")
        if raw is not None:
            values[key] = _value(f"camunda:{attribute}", raw, style="camunda")
    zeebe = {
        "assignee": ("assignmentDefinition", "assignee"),
        "candidate_groups": ("assignmentDefinition", "candidateGroups"),
        "candidate_users": ("assignmentDefinition", "candidateUsers"),
        "priority": ("priorityDefinition", "priority"),
        "due_date": ("taskSchedule", "dueDate"),
    }
    for key, (tag, attribute) in zeebe.items():
        found = node.xpath(f"./bpmn:extensionElements/zeebe:{tag}/@{attribute}", namespaces=_NS)
        if found:
            # before FEEL was read, `=` started a Python expression (instances of then replay so)
            values[key] = _value(f"zeebe:{tag} {attribute}", str(found[0]), style="zeebe" if feel else "aimatrix")
    if values["candidate_groups"] is None and lane:
        values["candidate_groups"] = Setting(f"lane '{lane}'", literal=lane)

    form = props.get("aimatrix.form")
    spiff_form = node.xpath("./bpmn:extensionElements/spiffworkflow:formJsonSchemaFilename/text()", namespaces=_NS)
    if spiff_form:
        form = str(spiff_form[0]).strip()
    ui_form = node.xpath("./bpmn:extensionElements/spiffworkflow:formUiSchemaFilename/text()", namespaces=_NS)
    form_id = node.xpath("./bpmn:extensionElements/zeebe:formDefinition/@formId", namespaces=_NS)
    camunda_form = (node.get(f"{{{CAMUNDA_NS}}}formKey") or "").rsplit(":", 1)[-1]
    if camunda_form.lower().endswith((".json", ".form")):
        # Camunda 7 names deployed forms `camunda-forms:deployment:<file>` or `embedded:deployment:<file>`;
        # other keys name forms of an application outside the engine, which it does not render
        form = camunda_form
    separate = tuple(s.strip() for s in props.get("aimatrix.separateFrom", "").split(",") if s.strip())
    return HumanTaskSettings(
        assignee=values["assignee"],
        candidate_groups=values["candidate_groups"],
        candidate_users=values["candidate_users"],
        priority=values["priority"],
        due_date=values["due_date"],
        form=form or None,
        form_id=str(form_id[0]).strip() if form_id else None,
        ui_form=str(ui_form[0]).strip() if ui_form else None,
        separate_from=separate,
    )


def _escalation(node: etree._Element, props: dict[str, str]) -> Escalation:
    known = {"assignee", "candidateGroups", "candidateUsers", "priority"}
    unknown = sorted(k for k in props if k.removeprefix("aimatrix.escalate.") not in known)
    if unknown:
        raise ValueError(
            f"unknown escalation setting {unknown[0]!r}: use aimatrix.escalate.assignee, "
            ".candidateGroups, .candidateUsers or .priority"
        )

    def setting(name: str) -> Setting | None:
        return _value(f"property aimatrix.escalate.{name}", props.get(f"aimatrix.escalate.{name}"), style="aimatrix")

    return Escalation(
        assignee=setting("assignee"),
        candidate_groups=setting("candidateGroups"),
        candidate_users=setting("candidateUsers"),
        priority=setting("priority"),
    )


def settings_of(task_spec: Any) -> HumanTaskSettings:
    found = getattr(task_spec, "human_settings", None)
    return found if isinstance(found, HumanTaskSettings) else HumanTaskSettings()


def escalation_of(task_spec: Any) -> Escalation | None:
    found = getattr(task_spec, "escalation", None)
    return found if isinstance(found, Escalation) else None


def annotate(specs: list[Any], model: ModelHumanSettings, form_ids: dict[str, str]) -> None:
    """Attach the settings to Spiff's task specs, where the engine finds them; a Camunda form id
    becomes the name of the deployed file that carries it (`form_ids`: id → file name)."""
    for spec in specs:
        for task_spec in spec.task_specs.values():
            bpmn_id = getattr(task_spec, "bpmn_id", None)
            if bpmn_id in model.tasks:
                settings = model.tasks[bpmn_id]
                if settings.form_id is not None and settings.form_id in form_ids:
                    settings = dataclasses.replace(settings, form=form_ids[settings.form_id])
                task_spec.human_settings = settings
            if bpmn_id in model.escalations:
                task_spec.escalation = model.escalations[bpmn_id]


# -- deploy-time checks ------------------------------------------------------------------------


def expressions(settings: HumanTaskSettings | Escalation) -> list[Setting]:
    found = [settings.assignee, settings.candidate_groups, settings.candidate_users, settings.priority]
    if isinstance(settings, HumanTaskSettings):
        found.append(settings.due_date)
    return [s for s in found if s is not None and s.expression is not None]


def literal_problem(settings: HumanTaskSettings | Escalation) -> str | None:
    """A literal priority or due date that can never be valid."""
    if settings.priority is not None and settings.priority.literal is not None:
        try:
            priority(settings.priority.literal, settings.priority.name)
        except ValueError as err:
            return str(err)
    due = getattr(settings, "due_date", None)
    if due is not None and due.literal is not None:
        try:
            due_at(due.literal, due.name, datetime(2000, 1, 1))
        except ValueError as err:
            return str(err)
    return None


# -- values ------------------------------------------------------------------------------------


def names(value: Any, what: str) -> list[str]:
    """A list of user or group names from a comma-separated string or a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise ValueError(f"{what} must be a name, a comma-separated string or a list of names, got {value!r}")


def one_name(value: Any, what: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value.strip() or None
    raise ValueError(f"{what} must be a user name, got {value!r}")


def priority(value: Any, what: str) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ValueError(f"{what} must be a whole number from 0 to 100, got {value!r}")
    return value


def due_at(value: Any, what: str, opened: datetime) -> datetime | None:
    """An ISO date-time, or an ISO duration counted from when the task opened."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        text = value.strip()
        duration = _ISO_DURATION.match(text)
        if duration:
            years, months, weeks, days, hours, minutes, seconds = (float(g) if g else 0.0 for g in duration.groups())
            if years or months:
                raise ValueError(f"{what}: durations in years or months are ambiguous; use days, got {text!r}")
            return opened + timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=opened.tzinfo)
    raise ValueError(f"{what} must be an ISO 8601 date-time or duration (e.g. P3D), got {value!r}")


# -- evaluation, in the workflow -----------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    assignee: str | None
    candidate_groups: list[str]
    candidate_users: list[str]
    priority: int
    due_at: datetime | None


def _evaluate(task: Any, setting: Setting) -> Any:
    if setting.expression is None:
        return setting.literal
    environment = task.workflow.script_engine.environment
    try:
        return environment.evaluate(setting.expression, dict(task.data))
    except Exception as err:  # the model's expression over the model's data
        raise EvaluationError(f"{setting.name} ({setting.expression!r}): {type(err).__name__}: {err}") from err


class EvaluationError(ValueError):
    """An expression of the model failed over the process data; the message names the setting."""


def assignment(task: Any, opened: datetime) -> Assignment:
    """Who may work `task` (a ready user task), its priority and due date, from the model."""
    settings = settings_of(task.task_spec)

    def value(setting: Setting | None) -> tuple[Any, str]:
        return (None, "") if setting is None else (_evaluate(task, setting), setting.name)

    try:
        assignee = one_name(*value(settings.assignee))
        groups = names(*value(settings.candidate_groups))
        users = names(*value(settings.candidate_users))
        raw_priority, priority_name = value(settings.priority)
        rank = DEFAULT_PRIORITY if raw_priority is None else priority(raw_priority, priority_name)
        due = due_at(*value(settings.due_date), opened)
    except EvaluationError:
        raise
    except ValueError as err:
        raise EvaluationError(str(err)) from None
    return Assignment(assignee, groups, users, rank, due)


@dataclass(frozen=True)
class EscalationChange:
    """What an escalation sets; None leaves a value as it is (assignee: `unassign` releases it)."""

    assignee: str | None = None
    unassign: bool = False
    candidate_groups: list[str] | None = None
    candidate_users: list[str] | None = None
    priority: int | None = None


def escalate(task: Any, escalation: Escalation) -> EscalationChange:
    """Evaluate an escalation over the data of the user task it is attached to."""
    try:
        assignee = None
        unassign = False
        if escalation.assignee is not None:
            assignee = one_name(_evaluate(task, escalation.assignee), escalation.assignee.name)
            unassign = assignee is None
        groups = users = None
        if escalation.candidate_groups is not None:
            groups = names(_evaluate(task, escalation.candidate_groups), escalation.candidate_groups.name)
        if escalation.candidate_users is not None:
            users = names(_evaluate(task, escalation.candidate_users), escalation.candidate_users.name)
        rank = None
        if escalation.priority is not None:
            rank = priority(_evaluate(task, escalation.priority), escalation.priority.name)
    except EvaluationError:
        raise
    except ValueError as err:
        raise EvaluationError(str(err)) from None
    return EscalationChange(assignee, unassign, groups, users, rank)
