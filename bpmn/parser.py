"""SpiffWorkflow's parser, extended for service tasks from both modellers we accept.

bpmn.io with the SpiffWorkflow extensions writes `spiffworkflow:serviceTaskOperator`; Camunda
Modeler (Camunda 8) writes `zeebe:taskDefinition`, `zeebe:ioMapping` and `zeebe:taskHeaders`.
Both become an `ExternalServiceTask` that the workflow hands to a worker pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.parser.event_parsers import (
    CANCEL_EVENT_XPATH,
    CONDITIONAL_EVENT_XPATH,
    ERROR_EVENT_XPATH,
    ESCALATION_EVENT_XPATH,
    MESSAGE_EVENT_XPATH,
    SIGNAL_EVENT_XPATH,
    TERMINATION_EVENT_XPATH,
    TIMER_EVENT_XPATH,
)
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.defaults import (
    BoundaryEvent,
    EndEvent,
    IntermediateCatchEvent,
    IntermediateThrowEvent,
    StartEvent,
)
from SpiffWorkflow.spiff.parser.event_parsers import (
    SpiffBoundaryEventParser,
    SpiffEndEventParser,
    SpiffIntermediateCatchEventParser,
    SpiffIntermediateThrowEventParser,
    SpiffSendTaskParser,
    SpiffStartEventParser,
)
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.parser.task_spec import CallActivityParser, ScriptTaskParser, ServiceTaskParser

from bpmn import (
    activity_options,
    boundary_rearm,
    call_activities,
    camunda7,
    camunda8,
    decisions,
    determinism,
    event_subprocesses,
    feel,
    human_tasks,
    juel,
    ordered_outputs,
)
from bpmn.signals import PlatformSignalEventDefinition
from bpmn.specs import (
    ExternalServiceTask,
    MessageEndEvent,
    MessagePublishTask,
    MessageSendTask,
    MessageThrowEvent,
    SandboxedScriptTask,
)

determinism.install()
ordered_outputs.install()
event_subprocesses.install()
boundary_rearm.install()

ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"
_ZEEBE = {"zeebe": ZEEBE_NS, "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL"}
_CAMUNDA = {"camunda": "http://camunda.org/schema/1.0/bpmn", "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL"}


def _literal(value: str) -> str:
    return repr(value)


def zeebe_expression(
    source: str, what: str, node: etree._Element, filename: str | None, *, use_feel: bool = True
) -> str:
    """Zeebe marks expressions with a leading '=': FEEL, translated to the restricted evaluator's
    Python (bpmn/feel.py); anything else is a literal string. A FEEL expression outside the
    supported subset is refused here, naming `what` and the element. `use_feel=False`: the text
    after '=' is Python, as it was before FEEL (instances started then replay with it)."""
    if not source.startswith("="):
        return _literal(source)
    if not use_feel:
        return source[1:].strip()
    try:
        return feel.to_python(source[1:])
    except feel.FeelError as err:
        raise ValidationException(f"{what}: FEEL {source!r}: {err}", node=node, file_name=filename) from None


class AnyServiceTaskParser(ServiceTaskParser):
    def create_task(self) -> ExternalServiceTask:
        zeebe = self.node.xpath("./bpmn:extensionElements/zeebe:taskDefinition", namespaces=_ZEEBE)
        if zeebe:
            return self._create_zeebe_task(zeebe[0])
        extensions = self.parse_extensions()
        operator = extensions.get("serviceTaskOperator")
        if operator is None:
            raise ValidationException(
                "A service task needs an operator: spiffworkflow:serviceTaskOperator or "
                "zeebe:taskDefinition with a type such as 'http.request'",
                node=self.node,
                file_name=self.filename,
            )
        options, retries = self._activity_options(extensions.get("properties") or {})
        return ExternalServiceTask(
            self.spec,
            self.bpmn_id,
            operation_name=operator["name"],
            operation_params=operator["parameters"],
            result_variable=operator["resultVariable"],
            retries=operator["retries"] if operator.get("retries") is not None else retries,
            retry_backoff_base=operator.get("retryBackoffBase"),
            prescript=extensions.get("preScript"),
            postscript=extensions.get("postScript"),
            activity_options=options,
            **self.bpmn_attributes,
        )

    @property
    def _feel(self) -> bool:
        return bool(getattr(self.process_parser.parser, "feel", True))

    def _activity_options(self, values: dict[str, str]) -> tuple[dict[str, float | None], int | None]:
        try:
            return activity_options.parse({str(k): str(v) for k, v in values.items()})
        except ValueError as err:
            raise ValidationException(str(err), node=self.node, file_name=self.filename) from None

    def _create_zeebe_task(self, definition: etree._Element) -> ExternalServiceTask:
        params: dict[str, dict[str, Any]] = {}
        settings: dict[str, str] = {}
        for header in self.node.xpath("./bpmn:extensionElements/zeebe:taskHeaders/zeebe:header", namespaces=_ZEEBE):
            key, value = header.get("key", ""), header.get("value", "")
            if key.startswith("aimatrix."):
                settings[key] = value  # for the platform, not a parameter of the operation
            else:
                params[key] = {"value": _literal(value), "type": "str"}
        options, header_retries = self._activity_options(settings)
        for mapping in self.node.xpath("./bpmn:extensionElements/zeebe:ioMapping/zeebe:input", namespaces=_ZEEBE):
            target = mapping.get("target", "")
            source = zeebe_expression(
                mapping.get("source", ""), f"input '{target}'", self.node, self.filename, use_feel=self._feel
            )
            params[target] = {"value": source, "type": "any"}
        outputs = [
            (zeebe_expression(m.get("source", ""), f"output '{m.get('target', '')}'", self.node, self.filename,
                              use_feel=self._feel), m.get("target", ""))
            for m in self.node.xpath("./bpmn:extensionElements/zeebe:ioMapping/zeebe:output", namespaces=_ZEEBE)
        ]  # fmt: skip
        retries = definition.get("retries")
        return ExternalServiceTask(
            self.spec,
            self.bpmn_id,
            operation_name=definition.get("type", ""),
            operation_params=params,
            result_variable=f"{self.bpmn_id}_result",
            retries=int(retries) if retries and retries.isdigit() else header_retries,
            output_mappings=outputs,
            merge_result=not outputs,
            activity_options=options,
            **self.bpmn_attributes,
        )


class _SignalParsing:
    """Signal event definitions that broadcast beyond the instance (bpmn/signals.py). A throw
    element's `zeebe:ioMapping` inputs are the signal's variables when the signal declares no
    `spiffworkflow:payloadExpression` (Camunda 8 models)."""

    node: etree._Element
    filename: str | None
    process_parser: Any

    def parse_signal_event(self, signal_event: etree._Element) -> PlatformSignalEventDefinition:
        parsed = super().parse_signal_event(signal_event)  # type: ignore[misc]
        expression = parsed.expression
        if expression is None:
            expression = self._input_mappings()
        return PlatformSignalEventDefinition(parsed.name, expression=expression, variable=parsed.variable)

    def _input_mappings(self) -> str | None:
        if etree.QName(self.node).localname not in ("intermediateThrowEvent", "endEvent"):
            return None
        return _input_mappings(self, bool(getattr(self.process_parser.parser, "feel", True)))


_SPIFF = {"spiffworkflow": "http://spiffworkflow.org/bpmn/schema/1.0/core"}
_PUBLISH_OPERATOR = "message.publish"


class _MessagePublishing:
    """Send tasks and message throw and end events become MessagePublishTasks (bpmn/specs.py).

    What they send: the message's name; its correlation key from the message's `zeebe:subscription
    correlationKey` expression evaluated over the sender's data (both sides name the same variable),
    else the sender's business key; its variables from `spiffworkflow:messagePayload`, or the
    element's `zeebe:ioMapping` inputs, else none. Retries and timeouts: the `aimatrix.*` task headers
    or extension properties a service task takes.
    """

    node: etree._Element
    filename: str | None
    process_parser: Any
    spec: Any
    bpmn_id: str
    bpmn_attributes: dict[str, Any]

    def _message_ref(self) -> str | None:
        ref = self.node.get("messageRef")
        if ref:
            return str(ref)
        found = self.node.xpath("./bpmn:messageEventDefinition/@messageRef", namespaces=_ZEEBE)
        return str(found[0]) if found else None

    def _publish_task(self, spec_class: type[MessagePublishTask]) -> MessagePublishTask:
        ref = self._message_ref() or ""
        found = self.node.xpath("//bpmn:message[@id=$id]", namespaces=_ZEEBE, id=ref)
        name = (found[0].get("name") or "").strip() if found else ""
        if not name:
            raise ValidationException(
                "a message to send needs a messageRef to a bpmn:message that has a name",
                node=self.node, file_name=self.filename,
            )  # fmt: skip
        parser = self.process_parser.parser
        use_feel = bool(getattr(parser, "feel", True))
        key = parser.correlation_keys.get(name)
        payload = self.node.xpath(".//spiffworkflow:messagePayload/text()", namespaces=_SPIFF)
        if not payload and found:
            payload = found[0].xpath(".//spiffworkflow:messagePayload/text()", namespaces=_SPIFF)
        variables = str(payload[0]).strip() if payload else _input_mappings(self, use_feel) or "{}"
        settings = {
            h.get("key", ""): h.get("value", "")
            for h in self.node.xpath("./bpmn:extensionElements/zeebe:taskHeaders/zeebe:header", namespaces=_ZEEBE)
            if h.get("key", "").startswith("aimatrix.")
        }
        for prop in self.node.xpath(".//spiffworkflow:property", namespaces=_SPIFF):
            if (prop.get("name") or "").startswith("aimatrix."):
                settings[prop.get("name")] = prop.get("value") or ""
        try:
            options, retries = activity_options.parse(settings)
        except ValueError as err:
            raise ValidationException(str(err), node=self.node, file_name=self.filename) from None
        return spec_class(
            self.spec,
            self.bpmn_id,
            operation_name=_PUBLISH_OPERATOR,
            operation_params={
                "name": {"value": repr(name), "type": "str"},
                "correlation_key": {"value": key or "None", "type": "any"},
                "variables": {"value": variables, "type": "any"},
            },
            result_variable=None,
            retries=retries,
            activity_options=options,
            **self.bpmn_attributes,
        )


def _input_mappings(parser: Any, use_feel: bool) -> str | None:
    """A throw element's `zeebe:ioMapping` inputs as one expression giving the variables it sends."""
    inputs = parser.node.xpath("./bpmn:extensionElements/zeebe:ioMapping/zeebe:input", namespaces=_ZEEBE)
    if not inputs:
        return None
    items = []
    for mapping in inputs:
        target = mapping.get("target", "")
        _check_target(target, "input", parser.node, parser.filename)
        source = zeebe_expression(mapping.get("source", ""), f"input '{target}'", parser.node, parser.filename,
                                  use_feel=use_feel)  # fmt: skip
        items.append(f"{target!r}: ({source})")
    return "{" + ", ".join(items) + "}"


def _check_target(target: str, what: str, node: etree._Element, filename: str | None) -> None:
    if not target.isidentifier() or target.startswith("_"):
        raise ValidationException(f"{what} target {target!r} must be a variable name", node=node, file_name=filename)


def _throws_message(node: etree._Element) -> bool:
    return bool(node.xpath("./bpmn:messageEventDefinition", namespaces=_ZEEBE))


def in_event_subprocess(start: etree._Element) -> bool:
    """A start event of an event subprocess (`triggeredByEvent`)."""
    parent = start.getparent()
    return (
        parent is not None
        and etree.QName(parent).localname == "subProcess"
        and (parent.get("triggeredByEvent") or "").strip().lower() == "true"
    )


class _StartEventParser(_SignalParsing, SpiffStartEventParser):
    """SpiffWorkflow 3.2 reads no error or escalation on a start event: the start event of an error or
    escalation event subprocess became a none start, and the event subprocess ran as soon as the
    process started. Read here, for start events of event subprocesses (where BPMN allows them)."""

    def create_task(self) -> Any:
        if not in_event_subprocess(self.node):
            return super().create_task()
        event_definition = self.get_event_definition([
            MESSAGE_EVENT_XPATH, SIGNAL_EVENT_XPATH, TIMER_EVENT_XPATH, CONDITIONAL_EVENT_XPATH,
            ERROR_EVENT_XPATH, ESCALATION_EVENT_XPATH,
        ])  # fmt: skip
        task = self._create_task(event_definition)
        # read by bpmn/event_subprocesses.py: an interrupting one ends the rest of its process
        task.interrupting = (self.node.get("isInterrupting") or "true").strip().lower() != "false"
        self.spec.start.connect(task)
        return task


class _EndEventParser(_MessagePublishing, _SignalParsing, SpiffEndEventParser):
    """Spiff reads no signal on an end event: a signal end event would end silently, signalling nothing.
    A message end event sends through the platform, then ends its path."""

    def create_task(self) -> Any:
        if _throws_message(self.node):
            task = self._publish_task(MessageEndEvent)
            task.connect(self.spec.end)
            return task
        event_definition = self.get_event_definition([
            MESSAGE_EVENT_XPATH, CANCEL_EVENT_XPATH, ERROR_EVENT_XPATH, ESCALATION_EVENT_XPATH,
            TERMINATION_EVENT_XPATH, SIGNAL_EVENT_XPATH,
        ])  # fmt: skip
        task = self._create_task(event_definition)
        task.connect(self.spec.end)
        return task


class _IntermediateCatchEventParser(_SignalParsing, SpiffIntermediateCatchEventParser):
    pass


class _IntermediateThrowEventParser(_MessagePublishing, _SignalParsing, SpiffIntermediateThrowEventParser):
    def create_task(self) -> Any:
        if _throws_message(self.node):
            return self._publish_task(MessageThrowEvent)
        return super().create_task()


class _SendTaskParser(_MessagePublishing, SpiffSendTaskParser):
    def create_task(self) -> Any:
        return self._publish_task(MessageSendTask)


class _BoundaryEventParser(_SignalParsing, SpiffBoundaryEventParser):
    pass


class _CallActivityParser(CallActivityParser):
    """Reads how the call is bound (latest, deployment or a pinned version: bpmn/call_activities.py)."""

    def create_task(self) -> Any:
        task = super().create_task()
        try:
            task.call = call_activities.read_call(self.node, self.filename)
        except call_activities.BindingError as err:
            raise ValidationException(str(err), node=self.node, file_name=self.filename) from None
        task.mapping = self._mapping()
        return task

    def _mapping(self) -> call_activities.CallMapping | None:
        """Camunda 8's zeebe:ioMapping and propagateAll* flags, Camunda 7's camunda:in and camunda:out."""
        use_feel = bool(getattr(self.process_parser.parser, "feel", True))
        zeebe = self.node.xpath("./bpmn:extensionElements/zeebe:ioMapping/*", namespaces=_ZEEBE)
        called = self.node.xpath("./bpmn:extensionElements/zeebe:calledElement", namespaces=_ZEEBE)
        camunda = self.node.xpath("./bpmn:extensionElements/camunda:in | ./bpmn:extensionElements/camunda:out",
                                  namespaces=_CAMUNDA)  # fmt: skip
        if not zeebe and not called and not camunda:
            return None
        inputs: list[tuple[str, str]] = []
        outputs: list[tuple[str, str]] = []
        for mapping in zeebe:
            kind, target = etree.QName(mapping).localname, mapping.get("target", "")
            _check_target(target, kind, self.node, self.filename)
            source = zeebe_expression(mapping.get("source", ""), f"{kind} '{target}'", self.node, self.filename,
                                      use_feel=use_feel)  # fmt: skip
            (inputs if kind == "input" else outputs).append((source, target))
        flags = called[0] if called else None
        all_in = flags is None or (flags.get("propagateAllParentVariables") or "true").strip().lower() != "false"
        all_out = flags is None or (flags.get("propagateAllChildVariables") or "true").strip().lower() != "false"
        c7_in = [m for m in camunda if etree.QName(m).localname == "in"]
        c7_out = [m for m in camunda if etree.QName(m).localname == "out"]
        if c7_in:  # Camunda 7 passes only what camunda:in names
            all_in = any(m.get("variables") == "all" for m in c7_in)
        if c7_out:
            all_out = any(m.get("variables") == "all" for m in c7_out)
        for mapping in camunda:
            kind = "input" if etree.QName(mapping).localname == "in" else "output"
            if mapping.get("variables") == "all" or mapping.get("businessKey") is not None:
                continue  # all of them (above); the business key goes to the called instance anyway
            target = mapping.get("target", "")
            _check_target(target, f"camunda:{etree.QName(mapping).localname}", self.node, self.filename)
            (inputs if kind == "input" else outputs).append((self._camunda_source(mapping), target))
        return call_activities.CallMapping(tuple(inputs), tuple(outputs), all_in, all_out)

    def _camunda_source(self, mapping: etree._Element) -> str:
        source, expression = mapping.get("source"), mapping.get("sourceExpression")
        if source is not None and source.isidentifier():
            return source
        if expression is not None:
            try:
                return juel.to_python(expression)
            except juel.JuelError as err:
                raise ValidationException(
                    f"camunda:{etree.QName(mapping).localname} sourceExpression {expression!r}: {err}",
                    node=self.node, file_name=self.filename,
                ) from None  # fmt: skip
        raise ValidationException(
            f"camunda:{etree.QName(mapping).localname} needs a source variable name or a sourceExpression",
            node=self.node, file_name=self.filename,
        )  # fmt: skip


class AIMatrixParser(SpiffBpmnParser):
    OVERRIDE_PARSER_CLASSES = {
        **SpiffBpmnParser.OVERRIDE_PARSER_CLASSES,
        full_tag("serviceTask"): (AnyServiceTaskParser, ExternalServiceTask),
        full_tag("scriptTask"): (ScriptTaskParser, SandboxedScriptTask),
        full_tag("startEvent"): (_StartEventParser, StartEvent),
        full_tag("endEvent"): (_EndEventParser, EndEvent),
        full_tag("intermediateCatchEvent"): (_IntermediateCatchEventParser, IntermediateCatchEvent),
        full_tag("intermediateThrowEvent"): (_IntermediateThrowEventParser, IntermediateThrowEvent),
        full_tag("boundaryEvent"): (_BoundaryEventParser, BoundaryEvent),
        full_tag("sendTask"): (_SendTaskParser, MessageSendTask),
        full_tag("callActivity"): (_CallActivityParser, call_activities.CallActivity),
        full_tag("businessRuleTask"): (decisions.DecisionTaskParser, decisions.BusinessRuleTask),
    }

    def __init__(self, validate_schema: bool = True, *, feel: bool = True) -> None:
        super().__init__(validator=VALIDATOR if validate_schema else None)
        # Camunda 8's `=` expressions are FEEL; False for instances started before FEEL was read
        # (their `=` expressions were Python), so that they replay as they ran.
        self.feel = feel
        # message name → correlation key expression, from `zeebe:subscription` on `bpmn:message`
        self.correlation_keys: dict[str, str] = {}
        # user task assignment, forms and escalation timers, by element id (bpmn/human_tasks.py)
        self.human = human_tasks.ModelHumanSettings()

    def add_bpmn_xml(self, bpmn: etree._Element, filename: str | None = None) -> None:
        """Raises human_tasks.SettingsError for a user task setting that cannot be read."""
        super().add_bpmn_xml(bpmn, filename)
        # after the schema check, before Spiff reads the processes (it does so lazily)
        camunda8.rewrite(bpmn, filename, feel=self.feel)
        camunda7.rewrite(bpmn, filename)
        found = human_tasks.read(bpmn, feel=self.feel)
        self.human.tasks.update(found.tasks)
        self.human.escalations.update(found.escalations)
        self.human.lines.update(found.lines)
        for message in bpmn.xpath("//bpmn:message[@name]", namespaces=_ZEEBE):
            found = message.xpath("./bpmn:extensionElements/zeebe:subscription/@correlationKey", namespaces=_ZEEBE)
            if found and str(found[0]).strip():
                self.correlation_keys[message.get("name")] = zeebe_expression(
                    str(found[0]).strip(), "correlation key", message, filename, use_feel=self.feel
                )


@dataclass(frozen=True)
class ProcessSpec:
    """A parsed, runnable process: Spiff's spec plus the specs of what it calls."""

    process_id: str
    spec: Any
    subprocess_specs: dict[str, Any]
