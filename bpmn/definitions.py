"""Turn uploaded files into deployable definitions, or into errors a modeller can act on.

A definition is one executable process plus every file it needs (called processes, DMN tables),
identified by a content hash. Everything that would fail at run time and can be seen now is
refused here: bad XML, schema errors, unknown operators, script and expression syntax, code the
restricted evaluator refuses, malformed timers, and elements the engine does not run yet.
"""

from __future__ import annotations

import ast
import hashlib
import keyword
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePath
from threading import Lock
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import ThrowingEvent
from SpiffWorkflow.bpmn.specs.mixins.script_task import ScriptTask
from SpiffWorkflow.dmn.specs.business_rule_task_mixin import BusinessRuleTaskMixin
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.specs.MultiChoice import MultiChoice

from bpmn import (
    call_activities,
    decisions,
    event_subprocesses,
    feel,
    forms,
    human_tasks,
    juel,
    messages,
    model_code,
    signals,
    timer_event_subprocesses,
)
from bpmn.operators import UnknownOperatorError, registry
from bpmn.parser import AIMatrixParser, ProcessSpec, in_event_subprocess
from bpmn.restricted import AST_LOCK
from bpmn.script_engine import UnsafeCodeError, check_code
from bpmn.signals import PlatformSignalEventDefinition
from bpmn.specs import ExternalServiceTask, SandboxedScriptTask
from bpmn.timer_starts import firing, timer_starts
from bpmn.xml import XmlError, XmlLimits, parse_xml
from workflows.contracts import SCRIPT_ACTIVITY, ProcessInput

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
_DMN_NAMESPACES = (
    "http://www.omg.org/spec/DMN/20151101/dmn.xsd",
    "http://www.omg.org/spec/DMN/20180521/MODEL/",
    "https://www.omg.org/spec/DMN/20191111/MODEL/",
    "https://www.omg.org/spec/DMN/20230324/MODEL/",
)

# Elements whose semantics SpiffWorkflow gets wrong (link events hang, compensation throws do
# nothing) or that need wiring to the outside world that this engine does not have yet. Refusing
# them at deploy beats a process that silently does something else.
_UNSUPPORTED = {
    "linkEventDefinition": "link events are not supported",
    "compensateEventDefinition": "compensation events are not supported",
    "complexGateway": "complex gateways are not supported",
    "adHocSubProcess": "ad-hoc subprocesses are not supported",
}

_ISO_LITERAL = re.compile(
    r"^(R\d*/)?("
    r"P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
    r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?"
    r"|\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?"
    r")(/.+)?$"
)

# A cron expression (Camunda 7 timers, Quartz style: 5 to 7 fields of digits, * ? / , - L W # and names)
_CRON = re.compile(r"^(\S+\s+){4,6}\S+$")
_CRON_FIELD = re.compile(r"^[0-9*?/,\-LW#A-Za-z]+$")


def _is_cron(text: str) -> bool:
    fields = text.split()
    return (
        _CRON.match(text) is not None
        and all(_CRON_FIELD.match(f) and not keyword.iskeyword(f) for f in fields)
        and any(ch in f for f in fields for ch in "0123456789*?")
    )


# Looks like an ISO literal someone meant to write (P..., R3/P..., a date) rather than an expression.
# "R-1/PT1M" is Python too (R - 1 / PT1M), but never a number a timer could use: treat it as a cycle.
_ISO_LIKE = re.compile(r"^(R\d*/)?P[0-9A-Z.,]*$|^\d{4}-\d{2}-\d{2}\S*$|^R[-+\d]*/\S+$")


@dataclass(frozen=True)
class ModelError:
    file: str
    element_id: str | None
    line: int | None
    message: str


class ModelValidationError(Exception):
    def __init__(self, errors: list[ModelError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class DeployableDefinition:
    key: str
    name: str
    files: dict[str, str]  # file name → XML text, the main file first
    hash: str
    message_starts: tuple[str, ...] = ()  # names of the messages that start it
    signal_starts: tuple[str, ...] = ()  # names of the signals that start it
    # what its call activities call (bpmn/call_activities.py); those not deployed with it must be
    # deployed already (the API checks, naming the call activity)
    calls: tuple[call_activities.CalledProcess, ...] = ()


@dataclass
class _Upload:
    roots: dict[str, etree._Element] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    dmn_files: list[str] = field(default_factory=list)
    forms: dict[str, forms.Form] = field(default_factory=dict)  # user task forms, by file name

    def form_ids(self) -> dict[str, str]:
        """Camunda form id → the file that carries it."""
        return {form.form_id: name for name, form in self.forms.items() if form.form_id}


def content_hash(files: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(files[name].encode())
        digest.update(b"\0")
    return digest.hexdigest()


def quote_iso_timers(specs: list[Any]) -> None:
    """Modellers write `PT5M`; Spiff evaluates timer text as Python, so quote bare ISO literals."""
    for spec in specs:
        for task_spec in spec.task_specs.values():
            definition = getattr(task_spec, "event_definition", None)
            for timer in timer_definitions(definition):
                text = (timer.expression or "").strip()
                if _ISO_LITERAL.match(text):
                    timer.expression = repr(text)


def translate_feel(specs: list[Any]) -> None:
    """Camunda 8 writes sequence flow conditions and timers in FEEL too (`=amount > 100`), Camunda 7 in
    JUEL (`${amount > 100}`, bpmn/juel.py): translate them for the restricted evaluator. What falls
    outside the supported subsets (and cron timers) is kept on the spec (`feel_problems`), for the
    deploy check to report with the element and line."""
    for spec in specs:
        for task_spec in spec.task_specs.values():
            problems: list[str] = []
            for condition, target in getattr(task_spec, "cond_task_specs", []):
                source = (condition.args[0] or "").strip() if condition is not None else ""
                if source.startswith("="):
                    try:
                        condition.args = [feel.to_python(source[1:])]
                    except feel.FeelError as err:
                        problems.append(f"the condition of the flow to '{target}': FEEL {source!r}: {err}")
                elif juel.is_juel(source):
                    try:
                        condition.args = [juel.to_python(source)]
                    except juel.JuelError as err:
                        problems.append(f"the condition of the flow to '{target}': JUEL {source!r}: {err}")
            for timer in timer_definitions(getattr(task_spec, "event_definition", None)):
                source = (timer.expression or "").strip()
                if source.startswith("="):
                    try:
                        timer.expression = feel.to_python(source[1:])
                    except feel.FeelError as err:
                        problems.append(f"timer: FEEL {source!r}: {err}")
                elif juel.is_juel(source):
                    try:
                        timer.expression = juel.to_python(source)
                    except juel.JuelError as err:
                        problems.append(f"timer: JUEL {source!r}: {err}")
                elif _is_cron(source):
                    problems.append(
                        f"cron timer {source!r} is not supported: write an ISO 8601 cycle (e.g. R/PT24H), or a "
                        "date or duration"
                    )
            if problems:
                task_spec.feel_problems = problems


def timer_definitions(definition: Any) -> list[TimerEventDefinition]:
    if isinstance(definition, TimerEventDefinition):
        return [definition]
    return [d for d in getattr(definition, "event_definitions", []) if isinstance(d, TimerEventDefinition)]


def _line_of(root: etree._Element | None, element_id: str | None) -> int | None:
    if root is None or not element_id:
        return None
    found = root.xpath("//*[@id=$id]", id=element_id)
    return found[0].sourceline if found else None


def _read_files(files: dict[str, bytes], errors: list[ModelError], limits: XmlLimits | None) -> _Upload:
    upload = _Upload()
    for name, content in files.items():
        suffix = PurePath(name).suffix.lower()
        if forms.is_form_file(name):
            _read_form(name, content, upload, errors, limits)
            continue
        if suffix not in (".bpmn", ".dmn", ".xml"):
            errors.append(
                ModelError(name, None, None, "only .bpmn, .dmn and form (.json, .form) files can be deployed")
            )
            continue
        try:
            root = parse_xml(content, limits)
            text = content.decode("utf-8")
        except XmlError as err:
            errors.append(ModelError(name, None, err.line, err.message))
            continue
        except UnicodeDecodeError as err:
            errors.append(ModelError(name, None, None, f"not UTF-8: {err.reason}"))
            continue
        namespace = etree.QName(root).namespace
        if namespace in _DMN_NAMESPACES:
            upload.dmn_files.append(name)
        elif namespace != BPMN_NS or etree.QName(root).localname != "definitions":
            errors.append(ModelError(name, None, root.sourceline, "not a BPMN 2.0 or DMN definitions document"))
            continue
        upload.roots[name] = root
        upload.texts[name] = text
    return upload


def _read_form(name: str, content: bytes, upload: _Upload, errors: list[ModelError], limits: XmlLimits | None) -> None:
    if limits is not None and len(content) > limits.max_bytes:
        errors.append(ModelError(name, None, None, f"form is larger than {limits.max_bytes} bytes"))
        return
    try:
        text = content.decode("utf-8")
        form = forms.load(name, text)
    except UnicodeDecodeError as err:
        errors.append(ModelError(name, None, None, f"not UTF-8: {err.reason}"))
        return
    except forms.FormError as err:
        errors.append(ModelError(name, None, None, f"form: {err}"))
        return
    except RecursionError:
        errors.append(ModelError(name, None, None, "form: nested too deeply"))
        return
    upload.forms[name] = form
    upload.texts[name] = text


def _unsupported_elements(name: str, root: etree._Element, errors: list[ModelError]) -> None:
    for element in root.iter(f"{{{BPMN_NS}}}*"):
        local = etree.QName(element).localname
        message = _UNSUPPORTED.get(local)
        parent = element.getparent()
        if local in ("messageEventDefinition", "receiveTask", "sendTask"):
            message = _message_problem(root, element)
        if local == "signalEventDefinition":
            message = _signal_problem(root, element)
        if (
            local == "timerEventDefinition"
            and parent is not None
            and etree.QName(parent).localname == "startEvent"
            and not _starts_process_or_its_event_subprocess(parent)
        ):
            message = (
                "timer start events of subprocesses are not supported yet (event subprocesses at the process level are)"
            )
        if (
            local == "conditionalEventDefinition"
            and parent is not None
            and etree.QName(parent).localname == "startEvent"
        ):
            # nothing would ever evaluate it: an instance would wait at its start for good
            message = "conditional start events are not supported: start the instance when the condition holds"
        if local == "startEvent" and in_event_subprocess(element) and not _defined_start(element):
            message = (
                "an event subprocess starts on an event: its start event needs an error, escalation, "
                "message or signal definition (a none start event would run it as soon as the process starts)"
            )
        elif local == "startEvent" and _catches_error_or_escalation(element):
            subprocess = element.getparent()
            if not in_event_subprocess(element):
                message = "error and escalation start events belong to event subprocesses"
            elif subprocess is not None and etree.QName(subprocess.getparent()).localname != "process":
                message = (
                    "error and escalation event subprocesses run at the process level, not yet inside a "
                    "subprocess: catch the error or escalation with a boundary event on the subprocess"
                )
        if local in ("intermediateThrowEvent", "endEvent") and len(_event_definitions(element)) > 1:
            # SpiffWorkflow throws one of them: a message and a signal drawn on one event, one went unsent
            message = message or (
                "multiple throw events are not supported: draw one throw event per message or signal, "
                "one after the other"
            )
        if local == "startEvent" and len(_event_definitions(element)) > 1:
            message = message or _multiple_start_problem(element)
            if in_event_subprocess(element):
                # bpmn/event_subprocesses.py listens for one event per event subprocess: it would never start
                message = message or (
                    "multiple start events of event subprocesses are not supported: draw one event subprocess per event"
                )
        if local == "process" and not (element.get("id") or "").strip():
            # the process id is the definition's key: without one the store failed with a 500
            message = "a process needs an id: it is the key the definition is deployed and started by"
        if message is None:
            continue
        owner = element if element.get("id") and not local.endswith("Definition") else parent
        element_id = owner.get("id") if owner is not None else None
        errors.append(ModelError(name, element_id, element.sourceline, message))


def _event_definitions(element: etree._Element) -> list[str]:
    return [
        etree.QName(child).localname
        for child in element
        if isinstance(child.tag, str) and etree.QName(child).localname.endswith("EventDefinition")
    ]


def _multiple_start_problem(start: etree._Element) -> str | None:
    """Why a multiple start event (any one of its messages or signals starts an instance) cannot
    run, or None."""
    if start.get("parallelMultiple") == "true":
        # all of its events would have to meet before an instance exists to correlate them to
        return (
            "parallel multiple start events are not supported: an instance starts on one event; "
            "draw one start event per message or signal and join the paths"
        )
    if "timerEventDefinition" in _event_definitions(start):
        return "a timer in a multiple start event is not supported: draw a timer start event of its own"
    return None


def _defined_start(start: etree._Element) -> bool:
    """A start event whose definition is refused (or run) by its own rule: message, signal, timer,
    conditional, error, escalation."""
    kinds = {"messageEventDefinition", "signalEventDefinition", "timerEventDefinition", "conditionalEventDefinition"}
    return _catches_error_or_escalation(start) or bool(kinds & set(_event_definitions(start)))


def _catches_error_or_escalation(start: etree._Element) -> bool:
    return bool({"errorEventDefinition", "escalationEventDefinition"} & set(_event_definitions(start)))


_MESSAGE_CATCHERS = ("intermediateCatchEvent", "boundaryEvent", "startEvent")
_MESSAGE_SENDERS = ("intermediateThrowEvent", "endEvent", "sendTask")
_SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"


def _message_problem(root: etree._Element, element: etree._Element) -> str | None:
    """Why a message element cannot run here, or None."""
    local = etree.QName(element).localname
    owner = element if local in ("receiveTask", "sendTask") else element.getparent()
    owner_kind = etree.QName(owner).localname if owner is not None else ""
    if owner is None or owner_kind not in (*_MESSAGE_CATCHERS, "receiveTask", *_MESSAGE_SENDERS):
        return f"message {owner_kind or 'event'}s are not supported"
    if owner_kind == "startEvent" and not _starts_process_or_its_event_subprocess(owner):
        return (
            "message start events of subprocesses are not supported yet (event subprocesses at the process level are)"
        )
    ref = element.get("messageRef")
    if not ref and local in ("receiveTask", "sendTask"):
        inner = element.xpath("./bpmn:messageEventDefinition/@messageRef", namespaces={"bpmn": BPMN_NS})
        ref = str(inner[0]) if inner else None
    found = root.xpath("//bpmn:message[@id=$id]", namespaces={"bpmn": BPMN_NS}, id=ref or "")
    if not ref or not found or not (found[0].get("name") or "").strip():
        return "a message event needs a messageRef to a bpmn:message that has a name"
    uses_properties = root.xpath(
        "//bpmn:correlationPropertyRetrievalExpression[@messageRef=$id]", namespaces={"bpmn": BPMN_NS}, id=ref
    ) or owner.xpath(".//spiff:processVariableCorrelation", namespaces={"spiff": _SPIFF_NS})
    if uses_properties:
        return (
            "correlation properties are not supported: give the bpmn:message a zeebe:subscription "
            "correlationKey expression, or correlate by business key"
        )
    return None


def _starts_process_or_its_event_subprocess(start: etree._Element) -> bool:
    """A start event of the process, or of an event subprocess of the process (bpmn/event_subprocesses.py
    runs those; nested deeper, nothing would listen for them)."""
    parent = start.getparent()
    if parent is None:
        return False
    if etree.QName(parent).localname == "process":
        return True
    grandparent = parent.getparent()
    return in_event_subprocess(start) and grandparent is not None and etree.QName(grandparent).localname == "process"


def _signal_problem(root: etree._Element, element: etree._Element) -> str | None:
    """Why a signal element cannot run here, or None."""
    owner = element.getparent()
    if owner is None or etree.QName(owner).localname not in (*_MESSAGE_CATCHERS, "intermediateThrowEvent", "endEvent"):
        return "a signal event definition belongs to a start, intermediate, boundary or end event"
    if etree.QName(owner).localname == "startEvent" and not _starts_process_or_its_event_subprocess(owner):
        return "signal start events of subprocesses are not supported yet (event subprocesses at the process level are)"
    ref = element.get("signalRef")
    found = root.xpath("//bpmn:signal[@id=$id]", namespaces={"bpmn": BPMN_NS}, id=ref or "")
    if not ref or not found or not (found[0].get("name") or "").strip():
        return "a signal event needs a signalRef to a bpmn:signal that has a name: the name is what it broadcasts"
    return None


def _element_at(root: etree._Element | None, line: int | None) -> str | None:
    """The id of the innermost element with an id enclosing `line` (schema errors give lines only)."""
    if root is None or not isinstance(line, int):
        return None
    found = None
    for element in root.iter():
        if element.sourceline == line:
            found = element
            break
    while found is not None and not found.get("id"):
        found = found.getparent()
    return found.get("id") if found is not None else None


_MISSING_PROCESS = re.compile(r"^The process '(?P<name>[^']*)' was not found")


def _spiff_error(err: SpiffWorkflowException, upload: _Upload, fallback_file: str) -> ModelError:
    file_name = getattr(err, "file_name", "") or fallback_file
    element_id = getattr(err, "id", None) or getattr(getattr(err, "task_spec", None), "bpmn_id", None)
    message = str(err.args[0]) if err.args else str(err)
    missing = _MISSING_PROCESS.match(message)
    if element_id is None and missing is not None:
        # Spiff names the process a call activity calls, not the call activity: find it
        element_id, file_name = _caller_of(missing["name"], upload) or (None, file_name)
    line = getattr(err, "line_number", None) or _line_of(upload.roots.get(file_name), element_id)
    element_id = element_id or _element_at(upload.roots.get(file_name), line)
    return ModelError(file_name, element_id or None, line if isinstance(line, int) else None, message)


def _caller_of(process_id: str, upload: _Upload) -> tuple[str, str] | None:
    """(element id, file) of a call activity that calls `process_id`."""
    for name, root in upload.roots.items():
        for activity in root.iter(f"{{{BPMN_NS}}}callActivity"):
            called = activity.get("calledElement") or "".join(
                activity.xpath("./bpmn:extensionElements/zeebe:calledElement/@processId", namespaces=_CALL_NS)
            )
            if called.strip().lstrip("=").strip().strip("\"'") == process_id and activity.get("id"):
                return str(activity.get("id")), name
    return None


_CALL_NS = {"bpmn": BPMN_NS, "zeebe": "http://camunda.org/schema/zeebe/1.0"}


def _check_code(
    source: str | None,
    mode: str,
    what: str,
    task_spec: Any,
    file_name: str,
    upload: _Upload,
    errors: list[ModelError],
) -> None:
    if not source:
        return
    element_id = getattr(task_spec, "bpmn_id", None)
    try:
        check_code(source.strip() if mode == "eval" else source, mode)
    except (RecursionError, MemoryError):
        # CPython's parser gives up on deeply nested code ("-" * 100_000 + "1") with these rather
        # than a SyntaxError; uncaught they were a 500.
        errors.append(
            ModelError(file_name, element_id, _line_of(upload.roots.get(file_name), element_id),
                       f"{what} is nested too deeply to parse")
        )  # fmt: skip
    except SyntaxError as err:
        errors.append(
            ModelError(
                file_name, element_id, _line_of(upload.roots.get(file_name), element_id),
                f"{what} is not valid Python: {err.msg} (line {err.lineno} of the {what})",
            )
        )  # fmt: skip
    except UnsafeCodeError as err:
        errors.append(
            ModelError(file_name, element_id, _line_of(upload.roots.get(file_name), element_id), f"{what}: {err}")
        )


def _check_spec(spec: Any, upload: _Upload, errors: list[ModelError]) -> None:
    file_name = spec.file or ""
    for task_spec in spec.task_specs.values():
        element_id = getattr(task_spec, "bpmn_id", None)
        feel_problems = getattr(task_spec, "feel_problems", None)
        if feel_problems:
            line = _line_of(upload.roots.get(file_name), element_id)
            errors.extend(ModelError(file_name, element_id, line, problem) for problem in feel_problems)
            continue
        for label in ("prescript", "postscript"):
            _check_code(getattr(task_spec, label, None), "exec", label, task_spec, file_name, upload, errors)
        if isinstance(task_spec, ScriptTask):
            _check_code(task_spec.script, "exec", "script", task_spec, file_name, upload, errors)
        for label, source in model_code.loop_expressions(task_spec):
            _check_code(source, "eval", label, task_spec, file_name, upload, errors)
        for condition, _ in getattr(task_spec, "cond_task_specs", []):
            if condition is not None:
                _check_code(condition.args[0], "eval", "condition", task_spec, file_name, upload, errors)
        if isinstance(task_spec, ExternalServiceTask):
            try:
                resolved = registry.resolve(task_spec.operation_name)
            except UnknownOperatorError as err:
                line = _line_of(upload.roots.get(file_name), element_id)
                errors.append(ModelError(file_name, element_id, line, str(err)))
            else:
                problem = _site_problem(resolved.config.site_param, task_spec)
                if problem:
                    line = _line_of(upload.roots.get(file_name), element_id)
                    errors.append(ModelError(file_name, element_id, line, f"operator '{resolved.name}': {problem}"))
            for param_name, param in task_spec.operation_params.items():
                _check_code(str(param.get("value", "")), "eval", f"parameter '{param_name}'", task_spec,
                            file_name, upload, errors)  # fmt: skip
            for source, _target in task_spec.output_mappings:
                _check_code(source, "eval", "output mapping", task_spec, file_name, upload, errors)
        for timer, owner in _timers_of(task_spec):
            _check_timer(timer, owner, file_name, upload, errors)
        key = getattr(getattr(task_spec, "event_definition", None), "correlation_key_expression", None)
        _check_code(key, "eval", "correlation key", task_spec, file_name, upload, errors)
        definition = getattr(task_spec, "event_definition", None)
        if isinstance(definition, PlatformSignalEventDefinition) and isinstance(task_spec, ThrowingEvent):
            _check_code(definition.expression, "eval", "signal payload", task_spec, file_name, upload, errors)


_SITE_SETTINGS = {
    "schedule_to_start_seconds": "aimatrix.scheduleToStartTimeout",
    "fallback_operator": "aimatrix.fallback",
}


def _site_problem(site_param: str | None, task_spec: Any) -> str | None:
    """A per-site operator (edge.*) needs its site parameter; the site settings fit no other."""
    if site_param is not None:
        if site_param not in task_spec.operation_params:
            return (
                f"it runs at an edge site: give the task a '{site_param}' parameter naming the site "
                "(e.g. 'plant-7', or an expression over the process data)"
            )
        return None
    used = [name for field, name in _SITE_SETTINGS.items() if field in task_spec.activity_options]
    if used:
        return f"{', '.join(used)} only applies to operators that run at a site (edge.*)"
    return None


def _timers_of(task_spec: Any) -> list[tuple[TimerEventDefinition, Any]]:
    """The spec's timers, each with the spec its problems are reported on: an event-based gateway
    holds the timers of the catch events after it, and a problem is named by that catch event."""
    definition = getattr(task_spec, "event_definition", None)
    inner = getattr(definition, "event_definitions", None)
    if inner is not None and len(getattr(task_spec, "outputs", [])) == len(inner):
        return [(d, task_spec.outputs[i]) for i, d in enumerate(inner) if isinstance(d, TimerEventDefinition)]
    return [(timer, task_spec) for timer in timer_definitions(definition)]


def _check_timer(
    timer: TimerEventDefinition, task_spec: Any, file_name: str, upload: _Upload, errors: list[ModelError]
) -> None:
    element_id = getattr(task_spec, "bpmn_id", None)
    text = (timer.expression or "").strip()
    if _ISO_LIKE.match(text) and not _ISO_LITERAL.match(text):
        line = _line_of(upload.roots.get(file_name), element_id)
        errors.append(ModelError(file_name, element_id, line, f"invalid ISO 8601 timer value {_short(text)}"))
        return
    if not text:
        line = _line_of(upload.roots.get(file_name), element_id)
        errors.append(ModelError(file_name, element_id, line, "the timer has no value, e.g. PT5M"))
        return
    before = len(errors)
    _check_code(timer.expression, "eval", "timer expression", task_spec, file_name, upload, errors)
    if len(errors) > before:
        return
    source = text
    try:
        # Only literals: evaluating the model's expression here let `9**9**9**9` or `'x' * 10**10`
        # hold the API for good.
        with AST_LOCK:
            value = ast.literal_eval(source)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        with AST_LOCK:
            parsed = ast.parse(source, mode="eval")
        if not any(isinstance(node, ast.Name) for node in ast.walk(parsed)):
            # It reads no process data, so it is the same every time, and the engine would evaluate
            # it inside the workflow: a constant bomb there stalls the engine instead of the API.
            line = _line_of(upload.roots.get(file_name), element_id)
            message = "a timer that reads no process data must be an ISO 8601 literal, e.g. PT5M or 2030-01-01T09:00Z"
            errors.append(ModelError(file_name, element_id, line, message))
        return  # depends on process data: checked when it runs
    try:
        if not isinstance(value, str):
            raise ValueError("it must be a string")
        _check_timer_value(timer, value)
    except Exception as err:
        line = _line_of(upload.roots.get(file_name), element_id)
        errors.append(ModelError(file_name, element_id, line, f"invalid timer value {_short(value)}: {err}"))


# How far ahead a timer may lie. Temporal timers are Go durations (at most about 292 years), and
# Spiff adds months one at a time: "P99999999Y" looped for minutes at deploy, and in the workflow it
# tripped the deadlock detector on every retry of the workflow task, so the instance never moved.
_MAX_TIMER_DAYS = 100 * 366


def _check_timer_value(timer: TimerEventDefinition, value: str) -> None:
    """Raise unless `value` is what the engine can turn into a Temporal timer (as bpmn/runtime.py does)."""
    if isinstance(timer, CycleTimerEventDefinition):
        # the same split as Spiff's parse_iso_recurring_interval, to bound its durations first
        for part in value.upper().replace("--", "/").strip("R").split("/")[1:]:
            if part.startswith("P"):
                _check_duration(part)
        _cycles, _start, interval = TimerEventDefinition.parse_iso_recurring_interval(value)
        if interval.total_seconds() <= 0:
            raise ValueError("a cycle's interval must be longer than zero")
    elif isinstance(timer, TimeDateEventDefinition):
        # the engine reads a date with parse_time_or_duration: a duration there is no date
        if not isinstance(TimerEventDefinition.parse_time_or_duration(value), datetime):
            raise ValueError("a timeDate needs a date and time")
    else:
        _check_duration(value)


# Spiff's own duration parser is lenient ("R3/PT1M" reads as one minute); a duration must be ISO 8601.
_DURATION = re.compile(
    r"P(?!$)(\d+([.,]\d+)?Y)?(\d+([.,]\d+)?M)?(\d+([.,]\d+)?W)?(\d+([.,]\d+)?D)?"
    r"(T(?=\d)(\d+([.,]\d+)?H)?(\d+([.,]\d+)?M)?(\d+([.,]\d+)?S)?)?"
)


def _check_duration(value: str) -> None:
    if not _DURATION.fullmatch(value.strip().upper()):
        raise ValueError("not an ISO 8601 duration such as PT5M or P3D")
    parsed = TimerEventDefinition.parse_iso_duration(value)
    if not parsed:
        raise ValueError("a duration needs at least one amount, e.g. PT5M")
    scale = {"years": 366, "months": 31, "weeks": 7, "days": 1, "hours": 1 / 24, "minutes": 1 / 1440}
    days = sum(float(amount) * scale.get(unit, 1 / 86400) for unit, amount in parsed.items())
    if days > _MAX_TIMER_DAYS:
        raise ValueError(f"it lies more than {_MAX_TIMER_DAYS // 366} years ahead")
    datetime.now(UTC) + TimerEventDefinition.get_timedelta_from_start(dict(parsed))


def _short(value: object, limit: int = 80) -> str:
    """A repr for an error message, cut short: a model's value can be megabytes, or an int too long to print."""
    if isinstance(value, int) and value.bit_length() > 256:
        return f"<an integer of {value.bit_length()} bits>"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_layout(process: ProcessSpec, spec: Any, upload: _Upload, errors: list[ModelError]) -> None:
    """Refuse loops the engine cannot run, then create the workflow as the engine does first.

    A loop with no way out spins inside one workflow task until Temporal's deadlock detector fails it,
    again on every retry. And SpiffWorkflow lays out every path ahead when it creates a (sub)workflow,
    recursively: a loop that passes no exclusive or inclusive gateway recurses without end. Either way
    the instance looked alive while its first workflow task failed for ever.
    """
    from bpmn import runtime  # it imports this module

    file_name = spec.file or ""

    def refuse(element_id: str | None, message: str) -> None:
        errors.append(ModelError(file_name, element_id, _line_of(upload.roots.get(file_name), element_id), message))

    endless = _loop_through(spec, lambda s: (isinstance(s, MultiChoice) and len(s.outputs) > 1) or _is_boundary(s))
    if endless is not None:
        refuse(endless, f"the flow from '{endless}' comes back to it with no way out (an exclusive or inclusive "
                        "gateway with a condition, or a boundary event): an endless loop")  # fmt: skip
        return
    try:
        runtime.new_workflow(ProcessSpec(process.process_id, spec, process.subprocess_specs))
    except RecursionError:
        looping = _loop_through(spec, lambda s: isinstance(s, MultiChoice))
        refuse(looping, f"the flow from '{looping}' comes back to it without passing an exclusive or inclusive "
                        "gateway, which the engine cannot lay out: close the loop through one")  # fmt: skip
    except Exception as err:  # whatever it is, every instance of this process would fail on it at once
        refuse(None, f"the engine cannot start this process: {err}")


def _is_boundary(task_spec: Any) -> bool:
    return type(task_spec).__name__ == "BoundaryEventSplit"  # SpiffWorkflow's node for boundary events


def _loop_through(spec: Any, exit_: Callable[[Any], bool]) -> str | None:
    """The id of an element on a loop of `spec`'s flows that passes no element for which `exit_` holds."""
    done: set[int] = set()
    for first in spec.task_specs.values():
        if id(first) in done:
            continue
        path: list[Any] = [first]
        on_path = {id(first)}
        pending = [iter(() if exit_(first) else first.outputs)]
        while pending:
            following = next(pending[-1], None)
            if following is None:
                pending.pop()
                done.add(id(path[-1]))
                on_path.discard(id(path.pop()))
            elif id(following) in on_path:
                loop = path[[id(s) for s in path].index(id(following)) :]
                return next((str(s.bpmn_id) for s in loop if getattr(s, "bpmn_id", None)), None)
            elif id(following) not in done:
                path.append(following)
                on_path.add(id(following))
                pending.append(iter(() if exit_(following) else following.outputs))
    return None


def _build_parser(
    upload: _Upload, errors: list[ModelError], validate_schema: bool, *, feel: bool = True
) -> AIMatrixParser:
    parser = AIMatrixParser(validate_schema=validate_schema, feel=feel)
    for name, root in upload.roots.items():
        try:
            if name in upload.dmn_files:
                parser.add_dmn_xml(root, filename=name)
            else:
                parser.add_bpmn_xml(root, filename=name)
        except ValidationException as err:
            errors.append(_spiff_error(err, upload, name))
        except SpiffWorkflowException as err:
            errors.append(ModelError(name, None, None, str(err)))
        except human_tasks.SettingsError as err:
            errors.append(ModelError(name, err.element_id, err.line, str(err)))
    return parser


def _executable_process_ids(parser: AIMatrixParser, upload: _Upload) -> list[tuple[str, str]]:
    found = []
    for process_id, process_parser in parser.process_parsers.items():
        if process_parser.filename in upload.dmn_files or not process_parser.process_executable:
            continue
        found.append((process_id, process_parser.filename))
    return found


def validate_upload(files: dict[str, bytes], limits: XmlLimits | None = None) -> list[DeployableDefinition]:
    """Parse and check an upload. Raises ModelValidationError listing every problem found."""
    errors: list[ModelError] = []
    upload = _read_files(files, errors, limits)
    for name, root in upload.roots.items():
        if name not in upload.dmn_files:
            _unsupported_elements(name, root, errors)
        else:  # decision tables are model code too
            for cell, line, label, problem in model_code.dmn_cells(root):
                errors.append(ModelError(name, cell, line, f"DMN {label}: {problem}"))
            for table, line, problem in decisions.problems(root):
                errors.append(ModelError(name, table, line, f"decision table: {problem}"))
    if errors:
        raise ModelValidationError(errors)
    parser = _build_parser(upload, errors, validate_schema=True)
    if errors:
        raise ModelValidationError(errors)
    processes = _executable_process_ids(parser, upload)
    if not processes:
        raise ModelValidationError([ModelError(next(iter(files), ""), None, None, "no executable process found")])
    definitions = []
    for process_id, file_name in processes:
        try:
            process = _specs_for(parser, process_id, upload.form_ids())
        except (ValidationException, SpiffWorkflowException) as err:
            errors.append(_spiff_error(err, upload, file_name))
            continue
        for spec in [process.spec, *process.subprocess_specs.values()]:
            _check_spec(spec, upload, errors)
            _check_layout(process, spec, upload, errors)
        form_files = _check_human_tasks(process, upload, errors)
        _check_timer_starts(process, upload, file_name, errors)
        needed = [
            file_name,
            *sorted({s.file for s in process.subprocess_specs.values() if s.file} - {file_name}),
            *form_files,
        ]
        if _uses_decisions(process):
            needed.extend(upload.dmn_files)
        texts = {name: upload.texts[name] for name in needed}
        name = parser.process_parsers[process_id].get_name() or process_id
        definitions.append(
            DeployableDefinition(
                process_id,
                name,
                texts,
                content_hash(texts),
                message_starts=tuple(messages.start_names(process)),
                signal_starts=tuple(signals.start_names(process)),
                calls=call_activities.calls_of([process.spec, *process.subprocess_specs.values()]),
            )
        )
    if errors:
        raise ModelValidationError(errors)
    return definitions


def _check_timer_starts(process: ProcessSpec, upload: _Upload, file_name: str, errors: list[ModelError]) -> None:
    """A timer start event becomes a Temporal Schedule: one per process, with a literal value."""
    starts = timer_starts(process)
    root = upload.roots.get(file_name)
    reported = {e.element_id for e in errors}  # an invalid ISO value is reported by the timer checks
    for index, start in enumerate(starts):
        if start.element_id in reported:
            continue
        problem = None
        if index > 0:
            problem = f"a process has one timer start event at most; '{starts[0].element_id}' is the first"
        elif not _ISO_LITERAL.match(start.value):
            problem = (f"a timer start event needs an ISO 8601 literal (a date-time, a duration or R[n]/interval): "
                       f"no process data exists before the instance, got {_short(start.value)}")  # fmt: skip
        else:
            try:
                firing(start, datetime.now(UTC))
            except (ValueError, TypeError, OverflowError) as err:
                problem = f"invalid timer value {_short(start.value)}: {err}"
        if problem:
            errors.append(ModelError(file_name, start.element_id, _line_of(root, start.element_id), problem))


def _check_human_tasks(process: ProcessSpec, upload: _Upload, errors: list[ModelError]) -> list[str]:
    """Check user task settings; the form files the process uses, to deploy with it."""
    specs = [process.spec, *process.subprocess_specs.values()]
    human_ids = {
        task_spec.bpmn_id
        for spec in specs
        for task_spec in spec.task_specs.values()
        if hasattr(task_spec, "human_settings")
    }
    used: set[str] = set()
    for spec in specs:
        file_name = spec.file or ""
        root = upload.roots.get(file_name)
        for task_spec in spec.task_specs.values():
            element_id = getattr(task_spec, "bpmn_id", None)
            settings = getattr(task_spec, "human_settings", None) or getattr(task_spec, "escalation", None)
            if settings is None:
                continue
            problems = [human_tasks.literal_problem(settings)]
            for setting in human_tasks.expressions(settings):
                _check_code(setting.expression, "eval", setting.name, task_spec, file_name, upload, errors)
            if isinstance(settings, human_tasks.HumanTaskSettings):
                problems.extend(_human_task_problems(settings, upload, human_ids, used))
            for problem in filter(None, problems):
                errors.append(ModelError(file_name, element_id, _line_of(root, element_id), problem))
    return sorted(used)


def _human_task_problems(
    settings: human_tasks.HumanTaskSettings, upload: _Upload, human_ids: set[str], used: set[str]
) -> list[str]:
    problems = []
    for other in settings.separate_from:
        if other != human_tasks.STARTER and other not in human_ids:
            problems.append(
                f"aimatrix.separateFrom names '{other}': use 'starter' or the id of a user task of this process"
            )
    for reference in (settings.form, settings.ui_form):
        if reference is not None and reference not in upload.forms:
            problems.append(f"form '{reference}' is not in the deployment: upload it with the model")
        elif reference is not None:
            used.add(reference)
    if settings.form_id is not None and settings.form is None:
        problems.append(f"zeebe:formDefinition formId '{settings.form_id}': no deployed form has this id; "
                        "upload its .form file with the model")  # fmt: skip
    return problems


def operators_used(process: ProcessSpec) -> set[str]:
    used: set[str] = set()
    for spec in [process.spec, *process.subprocess_specs.values()]:
        for task_spec in spec.task_specs.values():
            if isinstance(task_spec, ExternalServiceTask):
                used.add(task_spec.operation_name)
            elif isinstance(task_spec, SandboxedScriptTask):
                used.add(SCRIPT_ACTIVITY)
    return used


def start_input(
    *,
    instance_id: str,
    key: str,
    version: int,
    digest: str,
    files: dict[str, str],
    variables: dict[str, Any] | None = None,
    business_key: str | None = None,
    started_by: str | None = None,
    start_message: str | None = None,
    tenant: str | None = None,
    feel: bool = True,
    start_timer: str | None = None,
    start_signal: str | None = None,
    history_limit: int | None = None,
) -> ProcessInput:
    """Everything a ProcessWorkflow needs, including the routes of the operators it calls. `feel`:
    the definition's `=` expressions are FEEL (False for versions deployed before FEEL was read).

    Raises MessageStartOnly when started without its event but the process has no plain start event.
    """
    process = load_process(files, key, digest, feel=feel)
    started_by_event = start_message is not None or start_timer is not None or start_signal is not None
    if not started_by_event and not messages.has_plain_start(process):
        raise MessageStartOnly(messages.start_names(process), signals.start_names(process))
    return ProcessInput(
        instance_id=instance_id,
        definition_key=key,
        version=version,
        definition_hash=digest,
        files=files,
        variables=variables or {},
        business_key=business_key,
        started_by=started_by,
        operators=registry.routes(operators_used(process)),
        start_message=start_message,
        tenant=tenant,
        feel=feel,
        start_timer=start_timer,
        start_signal=start_signal,
        history_limit=history_limit,
    )


def load_deployed(files: dict[str, str], process_id: str, digest: str) -> tuple[ProcessSpec, bool]:
    """A deployed definition whose dialect is not at hand, and whether it was read as FEEL: as FEEL if
    it is valid FEEL, else as Python (versions deployed before FEEL was read). For reading a model's
    shape (the twin); instances start with the dialect stored with their definition."""
    try:
        process = load_process(files, process_id, digest)
    except (ModelValidationError, ValidationException):
        return load_process(files, process_id, digest, feel=False), False
    specs = [process.spec, *process.subprocess_specs.values()]
    if any(getattr(t, "feel_problems", None) for spec in specs for t in spec.task_specs.values()):
        return load_process(files, process_id, digest, feel=False), False
    return process, True


class MessageStartOnly(ValueError):
    """The process starts only on an event (a message, a signal, its timer): starting it any other way
    would leave it waiting."""

    def __init__(self, message_names: list[str], signal_names: list[str] | None = None) -> None:
        ways = []
        if message_names:
            names = ", ".join(repr(name) for name in message_names)
            ways.append(f"on a message ({names}): publish it with POST /messages")
        if signal_names:
            names = ", ".join(repr(name) for name in signal_names)
            ways.append(f"on a signal ({names}): broadcast it with POST /signals")
        super().__init__(" or ".join(ways) or "by its timer start event")


def _uses_decisions(process: ProcessSpec) -> bool:
    return any(
        isinstance(task_spec, BusinessRuleTaskMixin)
        for spec in [process.spec, *process.subprocess_specs.values()]
        for task_spec in spec.task_specs.values()
    )


def _specs_for(parser: AIMatrixParser, process_id: str, form_ids: dict[str, str]) -> ProcessSpec:
    spec = parser.get_spec(process_id)
    # A called process need not be in the upload: it runs as an instance of its own deployed
    # definition (bpmn/call_activities.py). Those in the upload are kept, for the in-memory runs and
    # for instances whose history ran calls as Spiff subprocesses.
    found = parser.get_subprocess_specs(process_id, require_call_activity_specs=False)
    subprocess_specs = {name: spec for name, spec in found.items() if spec is not None}
    timer_event_subprocesses.listen_for_timers([spec, *subprocess_specs.values()], subprocess_specs)
    event_subprocesses.stabilize([spec, *subprocess_specs.values()])
    quote_iso_timers([spec, *subprocess_specs.values()])
    if parser.feel:
        translate_feel([spec, *subprocess_specs.values()])
    messages.annotate([spec, *subprocess_specs.values()], parser.correlation_keys)
    human_tasks.annotate([spec, *subprocess_specs.values()], parser.human, form_ids)
    return ProcessSpec(process_id, spec, subprocess_specs)


_cache: OrderedDict[str, ProcessSpec] = OrderedDict()
_cache_lock = Lock()
_CACHE_SIZE = 256


def load_process(files: dict[str, str], process_id: str, digest: str, *, feel: bool = True) -> ProcessSpec:
    """Parse a deployed (already validated) definition, memoised by content hash.

    Deployed definitions are immutable, so the same hash always yields the same spec: sharing it
    between instances and workflow threads is safe, and workflows skip re-parsing on replay.
    `feel=False` reads Camunda 8's `=` expressions as Python, as before FEEL (see `deployed_dialect`).
    """
    key = f"{digest}:{process_id}:{'feel' if feel else 'python'}"
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
    errors: list[ModelError] = []
    upload = _Upload(texts=dict(files))
    for name, text in files.items():
        if forms.is_form_file(name):
            upload.forms[name] = forms.load(name, text)
            continue
        upload.roots[name] = parse_xml(text.encode("utf-8"))
        if etree.QName(upload.roots[name]).namespace in _DMN_NAMESPACES:
            upload.dmn_files.append(name)
    parser = _build_parser(upload, errors, validate_schema=False, feel=feel)
    if errors:
        raise ModelValidationError(errors)
    process = _specs_for(parser, process_id, upload.form_ids())
    with _cache_lock:
        _cache[key] = process
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return process
