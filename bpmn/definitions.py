"""Turn uploaded files into deployable definitions, or into errors a modeller can act on.

A definition is one executable process plus every file it needs (called processes, DMN tables),
identified by a content hash. Everything that would fail at run time and can be seen now is
refused here: bad XML, schema errors, unknown operators, script and expression syntax, code the
restricted evaluator refuses, malformed timers, and elements the engine does not run yet.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass, field
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
from SpiffWorkflow.bpmn.specs.mixins.script_task import ScriptTask
from SpiffWorkflow.exceptions import SpiffWorkflowException

from bpmn import messages
from bpmn.operators import UnknownOperatorError, registry
from bpmn.parser import AIMatrixParser, ProcessSpec
from bpmn.script_engine import UnsafeCodeError, check_code
from bpmn.specs import ExternalServiceTask
from bpmn.xml import XmlError, XmlLimits, parse_xml
from workflows.contracts import ProcessInput

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
    "signalEventDefinition": "signal events are not supported yet",
    "conditionalEventDefinition": "conditional events are not supported yet",
    "eventBasedGateway": "event-based gateways are not supported yet",
    "sendTask": "send tasks are not supported yet",
}

_ISO_LITERAL = re.compile(
    r"^(R\d*/)?("
    r"P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
    r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?"
    r"|\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?"
    r")(/.+)?$"
)

# Looks like an ISO literal someone meant to write (P..., R3/P..., a date) rather than an expression.
_ISO_LIKE = re.compile(r"^(R\d*/)?P[0-9A-Z.,]*$|^\d{4}-\d{2}-\d{2}\S*$")


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


@dataclass
class _Upload:
    roots: dict[str, etree._Element] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    dmn_files: list[str] = field(default_factory=list)


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
        if suffix not in (".bpmn", ".dmn", ".xml"):
            errors.append(ModelError(name, None, None, "only .bpmn and .dmn files can be deployed"))
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


def _unsupported_elements(name: str, root: etree._Element, errors: list[ModelError]) -> None:
    for element in root.iter(f"{{{BPMN_NS}}}*"):
        local = etree.QName(element).localname
        message = _UNSUPPORTED.get(local)
        parent = element.getparent()
        if local in ("messageEventDefinition", "receiveTask"):
            message = _message_problem(root, element)
        if local == "timerEventDefinition" and parent is not None and etree.QName(parent).localname == "startEvent":
            message = "timer start events are not supported yet"
        if message is None:
            continue
        owner = element if element.get("id") and not local.endswith("Definition") else parent
        element_id = owner.get("id") if owner is not None else None
        errors.append(ModelError(name, element_id, element.sourceline, message))


_MESSAGE_CATCHERS = ("intermediateCatchEvent", "boundaryEvent", "startEvent")
_SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"


def _message_problem(root: etree._Element, element: etree._Element) -> str | None:
    """Why a message element cannot run here, or None. Catching runs; throwing is not built yet."""
    owner = element if etree.QName(element).localname == "receiveTask" else element.getparent()
    owner_kind = etree.QName(owner).localname if owner is not None else ""
    if owner is None or owner_kind not in (*_MESSAGE_CATCHERS, "receiveTask"):
        return f"message {owner_kind or 'event'}s (throwing a message) are not supported yet"
    if owner_kind == "startEvent" and etree.QName(owner.getparent()).localname != "process":
        return "message start events of subprocesses are not supported yet"
    ref = element.get("messageRef")
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


def _spiff_error(err: SpiffWorkflowException, upload: _Upload, fallback_file: str) -> ModelError:
    file_name = getattr(err, "file_name", "") or fallback_file
    element_id = getattr(err, "id", None) or getattr(getattr(err, "task_spec", None), "bpmn_id", None)
    line = getattr(err, "line_number", None) or _line_of(upload.roots.get(file_name), element_id)
    element_id = element_id or _element_at(upload.roots.get(file_name), line)
    message = str(err.args[0]) if err.args else str(err)
    return ModelError(file_name, element_id or None, line if isinstance(line, int) else None, message)


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
        for label in ("prescript", "postscript"):
            _check_code(getattr(task_spec, label, None), "exec", label, task_spec, file_name, upload, errors)
        if isinstance(task_spec, ScriptTask):
            _check_code(task_spec.script, "exec", "script", task_spec, file_name, upload, errors)
        for condition, _ in getattr(task_spec, "cond_task_specs", []):
            if condition is not None:
                _check_code(condition.args[0], "eval", "condition", task_spec, file_name, upload, errors)
        if isinstance(task_spec, ExternalServiceTask):
            try:
                registry.resolve(task_spec.operation_name)
            except UnknownOperatorError as err:
                line = _line_of(upload.roots.get(file_name), element_id)
                errors.append(ModelError(file_name, element_id, line, str(err)))
            for param_name, param in task_spec.operation_params.items():
                _check_code(str(param.get("value", "")), "eval", f"parameter '{param_name}'", task_spec,
                            file_name, upload, errors)  # fmt: skip
            for source, _target in task_spec.output_mappings:
                _check_code(source, "eval", "output mapping", task_spec, file_name, upload, errors)
        for timer in timer_definitions(getattr(task_spec, "event_definition", None)):
            _check_timer(timer, task_spec, file_name, upload, errors)
        key = getattr(getattr(task_spec, "event_definition", None), "correlation_key_expression", None)
        _check_code(key, "eval", "correlation key", task_spec, file_name, upload, errors)


def _check_timer(
    timer: TimerEventDefinition, task_spec: Any, file_name: str, upload: _Upload, errors: list[ModelError]
) -> None:
    element_id = getattr(task_spec, "bpmn_id", None)
    text = (timer.expression or "").strip()
    if _ISO_LIKE.match(text) and not _ISO_LITERAL.match(text):
        line = _line_of(upload.roots.get(file_name), element_id)
        errors.append(ModelError(file_name, element_id, line, f"invalid ISO 8601 timer value {text!r}"))
        return
    before = len(errors)
    _check_code(timer.expression, "eval", "timer expression", task_spec, file_name, upload, errors)
    if len(errors) > before:
        return
    try:
        value = eval(compile(timer.expression.strip(), "<timer>", "eval"), {"__builtins__": {}})
    except Exception:
        return  # depends on process data: checked when it runs
    try:
        if not isinstance(value, str):
            raise ValueError("it must be a string")
        if isinstance(timer, CycleTimerEventDefinition):
            TimerEventDefinition.parse_iso_recurring_interval(value)
        elif isinstance(timer, TimeDateEventDefinition):
            TimerEventDefinition.get_datetime(value)
        else:
            TimerEventDefinition.parse_iso_duration(value)
    except Exception as err:
        line = _line_of(upload.roots.get(file_name), element_id)
        errors.append(ModelError(file_name, element_id, line, f"invalid timer value {value!r}: {err}"))


def _build_parser(upload: _Upload, errors: list[ModelError], validate_schema: bool) -> AIMatrixParser:
    parser = AIMatrixParser(validate_schema=validate_schema)
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
            process = _specs_for(parser, process_id)
        except (ValidationException, SpiffWorkflowException) as err:
            errors.append(_spiff_error(err, upload, file_name))
            continue
        for spec in [process.spec, *process.subprocess_specs.values()]:
            _check_spec(spec, upload, errors)
        needed = [
            file_name,
            *sorted({s.file for s in process.subprocess_specs.values() if s.file} - {file_name}),
        ]
        if _uses_decisions(process):
            needed.extend(upload.dmn_files)
        texts = {name: upload.texts[name] for name in needed}
        name = parser.process_parsers[process_id].get_name() or process_id
        definitions.append(
            DeployableDefinition(
                process_id, name, texts, content_hash(texts), message_starts=tuple(messages.start_names(process))
            )
        )
    if errors:
        raise ModelValidationError(errors)
    return definitions


def operators_used(process: ProcessSpec) -> set[str]:
    return {
        task_spec.operation_name
        for spec in [process.spec, *process.subprocess_specs.values()]
        for task_spec in spec.task_specs.values()
        if isinstance(task_spec, ExternalServiceTask)
    }


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
) -> ProcessInput:
    """Everything a ProcessWorkflow needs, including the routes of the operators it calls."""
    process = load_process(files, key, digest)
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
    )


def _uses_decisions(process: ProcessSpec) -> bool:
    return any(
        type(task_spec).__name__ == "BusinessRuleTask"
        for spec in [process.spec, *process.subprocess_specs.values()]
        for task_spec in spec.task_specs.values()
    )


def _specs_for(parser: AIMatrixParser, process_id: str) -> ProcessSpec:
    spec = parser.get_spec(process_id)
    subprocess_specs = parser.get_subprocess_specs(process_id)
    quote_iso_timers([spec, *subprocess_specs.values()])
    messages.annotate([spec, *subprocess_specs.values()], parser.correlation_keys)
    return ProcessSpec(process_id, spec, subprocess_specs)


_cache: OrderedDict[str, ProcessSpec] = OrderedDict()
_cache_lock = Lock()
_CACHE_SIZE = 256


def load_process(files: dict[str, str], process_id: str, digest: str) -> ProcessSpec:
    """Parse a deployed (already validated) definition, memoised by content hash.

    Deployed definitions are immutable, so the same hash always yields the same spec: sharing it
    between instances and workflow threads is safe, and workflows skip re-parsing on replay.
    """
    key = f"{digest}:{process_id}"
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
    errors: list[ModelError] = []
    upload = _Upload(texts=dict(files))
    for name, text in files.items():
        upload.roots[name] = parse_xml(text.encode("utf-8"))
        if etree.QName(upload.roots[name]).namespace in _DMN_NAMESPACES:
            upload.dmn_files.append(name)
    parser = _build_parser(upload, errors, validate_schema=False)
    if errors:
        raise ModelValidationError(errors)
    process = _specs_for(parser, process_id)
    with _cache_lock:
        _cache[key] = process
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return process
