"""Business rule tasks: which decision they call, what each hit policy returns, and where the result goes.

Each modeller names the decision its own way; all three call a decision table deployed beside the model:

- SpiffWorkflow: `spiffworkflow:calledDecisionId`. The result's outputs are merged into the process data,
  as in SpiffArena.
- Camunda 7: `camunda:decisionRef="id"`. With `camunda:resultVariable`, the result goes into that variable,
  shaped by `camunda:mapDecisionResult`: `singleEntry` (one value), `singleResult` (one rule's outputs),
  `collectEntries` (one output's values) or `resultList` (every rule's outputs, the default). Without one,
  the outputs are merged into the data, as SpiffWorkflow's Camunda parser does (Camunda 7 would keep them
  only for listeners, which this platform does not run).
- Camunda 8: `zeebe:calledDecision decisionId="id" resultVariable="r"`. The result is Zeebe's: a single
  hit gives the output's value (its outputs as a map where it has several; null where no rule matched), a
  multiple hit a list of them, an aggregation the number.

Hit policies, as Camunda runs them (SpiffWorkflow 3.2 knows only UNIQUE and COLLECT, and ran every other
policy as one of them without a word):

- UNIQUE: at most one rule matches; two matching rules fail the task, naming them (a decision called the
  SpiffWorkflow way takes the first, as SpiffWorkflow does: SpiffArena tables end with a catch-all rule).
- ANY: the matching rules must agree on their outputs; if not, the task fails.
- FIRST: the first matching rule, in rule order.
- RULE ORDER, COLLECT: every matching rule, in rule order; COLLECT may aggregate its one output with SUM,
  MIN, MAX or COUNT.
- PRIORITY and OUTPUT ORDER need output value lists and are refused at deploy (`problems`), as Camunda
  does; so are aggregations other than these four, or of a table with several outputs.

Instances that ran business rule tasks before the policies were honoured replay as they ran (`STRICT` is
False on their workflow: the engine's patch).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.dmn.specs.business_rule_task_mixin import BusinessRuleTaskMixin
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser.task_spec import BusinessRuleTaskParser
from SpiffWorkflow.spiff.specs.defaults import BusinessRuleTask as SpiffBusinessRuleTask
from SpiffWorkflow.util.deep_merge import DeepMerge

from bpmn import camunda8, human_tasks

STRICT = "aimatrix_decision_policies"  # attribute of the top workflow: False replays the old behaviour
# attribute of the top workflow: the engine's details by task id ({id: (actor, data)}), which its audit
# entry for the completed task carries; a decision writes which rules matched and what it set there
DECIDED = "aimatrix_decided"

CAMUNDA_NS = human_tasks.CAMUNDA_NS
_NS = {"bpmn": camunda8.BPMN_NS, "zeebe": camunda8.ZEEBE_NS}
SINGLE_HIT = ("UNIQUE", "ANY", "FIRST")
MULTIPLE_HIT = ("RULE ORDER", "COLLECT")
AGGREGATIONS = ("SUM", "MIN", "MAX", "COUNT")
CAMUNDA_MAPPINGS = ("singleEntry", "singleResult", "collectEntries", "resultList")


class DecisionError(ValueError):
    """A decision's result does not fit its hit policy or the task's result mapping."""


@dataclass(frozen=True)
class Placement:
    """Where a business rule task puts its decision's result."""

    style: str  # merge | camunda | zeebe
    variable: str | None = None
    mapping: str = "resultList"  # Camunda 7's mapDecisionResult
    # Camunda fails a UNIQUE table where two rules match; SpiffWorkflow takes the first, and SpiffArena
    # tables rely on it (a catch-all last rule), so a decision called the SpiffWorkflow way keeps that
    unique_checked: bool = True


@dataclass(frozen=True)
class Table:
    """What the decision table says about its result."""

    decision_id: str
    hit_policy: str
    aggregation: str | None
    outputs: tuple[str, ...]  # the output names, in column order


class BusinessRuleTask(SpiffBusinessRuleTask):
    """SpiffWorkflow's business rule task (its name is the audit's element type), deciding as above."""

    def __init__(self, wf_spec: Any, name: str, dmnEngine: Any, *, placement: Placement, table: Table, **kwargs: Any):
        super().__init__(wf_spec, name, dmnEngine=dmnEngine, **kwargs)
        self.placement = placement
        self.table = table

    def _run_hook(self, my_task: Any) -> bool:
        top = my_task.workflow.top_workflow
        if not getattr(top, STRICT, True):
            return bool(super()._run_hook(my_task))
        try:
            matched, rows = evaluate(self.dmnEngine, self.table, my_task, unique_checked=self.placement.unique_checked)
            written = result(rows, self.table, self.placement)
            my_task.data = DeepMerge.merge(my_task.data, written) if self.placement.style == "merge" else {
                **my_task.data, **written
            }  # fmt: skip
        except SpiffWorkflowException as err:
            err.add_note(f"Business Rule Task '{my_task.task_spec.bpmn_name}'.")
            raise
        except Exception as err:  # as the mixin does: the error names the task
            error = WorkflowTaskException(str(err), task=my_task)
            error.add_note(f"Business Rule Task '{my_task.task_spec.bpmn_name}'.")
            raise error from None
        decided = getattr(top, DECIDED, None)
        if decided is not None:  # the audit's entry: which decision, which rules, what it set
            decided[str(my_task.id)] = (None, {"decision": self.table.decision_id, "hit_policy": self.table.hit_policy,
                                               "rules": matched, "set": copy.deepcopy(written)})  # fmt: skip
        super(BusinessRuleTaskMixin, self)._run_hook(my_task)  # past the mixin's own evaluation
        return True


def evaluate(
    engine: Any, table: Table, task: Any, *, unique_checked: bool = True
) -> tuple[list[str], list[dict[str, Any]]]:
    """The ids of the rules that matched, and the decision result: the outputs of the rules the hit
    policy keeps, in rule order (one entry, the aggregate, for an aggregation)."""
    # Spiff's `decide` stops at the first match of a UNIQUE table; every match is needed to refuse two
    matched = [rule for rule in engine.decision_table.rules if engine._DMNEngine__check_rule(rule, task)]
    rows = [dict(rule.output_as_dict(task)) for rule in matched]
    policy = table.hit_policy
    if policy == "UNIQUE" and len(rows) > 1 and unique_checked:
        numbers = ", ".join(str(rule.row_number) for rule in matched)
        raise DecisionError(f"decision '{table.decision_id}' (hit policy UNIQUE): rules {numbers} all match")
    if policy == "ANY" and any(row != rows[0] for row in rows):
        numbers = ", ".join(str(rule.row_number) for rule in matched)
        raise DecisionError(
            f"decision '{table.decision_id}' (hit policy ANY): rules {numbers} match with different outputs"
        )
    ids = [str(rule.id) for rule in matched]
    if policy in SINGLE_HIT:
        return ids, rows[:1]
    if table.aggregation is None:
        return ids, rows
    return ids, _aggregated(rows, table)


def _aggregated(rows: list[dict[str, Any]], table: Table) -> list[dict[str, Any]]:
    [name] = table.outputs  # one output: the deploy check saw to that
    values = [row[name] for row in rows if name in row]
    if not values and table.aggregation != "COUNT":
        return []  # no rule matched: nothing to sum or compare
    if table.aggregation == "COUNT":
        return [{name: len(values)}]
    if table.aggregation == "SUM":
        return [{name: sum(values)}]
    return [{name: min(values) if table.aggregation == "MIN" else max(values)}]


def result(rows: list[dict[str, Any]], table: Table, placement: Placement) -> dict[str, Any]:
    """What the task writes into its data: the outputs to merge, or its result variable."""
    single = table.hit_policy in SINGLE_HIT or table.aggregation is not None
    if placement.style == "merge":
        if single:
            return dict(rows[0]) if rows else {}
        # SpiffWorkflow's COLLECT shape: each output's values in a list
        return {key: [row[key] for row in rows if key in row] for key in {k for row in rows for k in row}}
    assert placement.variable is not None
    if placement.style == "zeebe":
        values = [_value(row, table) for row in rows]
        return {placement.variable: (values[0] if values else None) if single else values}
    return {placement.variable: _mapped(rows, table, placement.mapping)}


def _value(row: dict[str, Any], table: Table) -> Any:
    """Zeebe's value of one rule: its output, or its outputs as a map where it has several."""
    return next(iter(row.values())) if len(table.outputs) == 1 and len(row) == 1 else row


def _mapped(rows: list[dict[str, Any]], table: Table, mapping: str) -> Any:
    """Camunda 7's `mapDecisionResult`."""
    if mapping == "resultList":
        return rows
    if mapping == "collectEntries":
        if any(len(row) > 1 for row in rows):
            raise DecisionError(
                f"decision '{table.decision_id}': mapDecisionResult collectEntries needs one output per rule"
            )
        return [next(iter(row.values())) for row in rows]
    if len(rows) > 1:
        raise DecisionError(f"decision '{table.decision_id}': mapDecisionResult {mapping} needs at most one rule")
    if mapping == "singleResult":
        return rows[0] if rows else None
    if rows and len(rows[0]) > 1:
        raise DecisionError(f"decision '{table.decision_id}': mapDecisionResult singleEntry needs one output")
    return next(iter(rows[0].values())) if rows else None


# -- parsing ----------------------------------------------------------------------------------------


class DecisionTaskParser(BusinessRuleTaskParser):
    """A business rule task of any of the three modellers (bpmn/parser.py registers it)."""

    def create_task(self) -> BusinessRuleTask:
        decision_id, placement = self._call()
        engine = self.process_parser.parser.get_engine(decision_id, self.node)
        extensions = self.parse_extensions()
        return BusinessRuleTask(
            self.spec,
            self.bpmn_id,
            dmnEngine=engine,
            placement=placement,
            table=_table(self.process_parser.parser.dmn_parsers[decision_id], decision_id),
            prescript=extensions.get("preScript"),
            postscript=extensions.get("postScript"),
            **self.bpmn_attributes,
        )

    def _call(self) -> tuple[str, Placement]:
        node = self.node
        spiff = self.get_decision_ref(node)
        if spiff:
            return spiff.strip(), Placement("merge", unique_checked=False)
        camunda_ref = node.get(f"{{{CAMUNDA_NS}}}decisionRef")
        if camunda_ref is not None:
            return self._camunda(camunda_ref)
        zeebe = node.xpath("./bpmn:extensionElements/zeebe:calledDecision", namespaces=_NS)
        if zeebe:
            return self._zeebe(zeebe[0])
        raise self._refused(
            "a business rule task needs a decision: spiffworkflow:calledDecisionId, camunda:decisionRef or "
            "zeebe:calledDecision"
        )

    def _camunda(self, ref: str) -> tuple[str, Placement]:
        node = self.node
        decision_id = ref.strip()
        if not decision_id.replace("-", "_").replace(".", "_").isidentifier():
            raise self._refused(f"camunda:decisionRef {ref!r} is not supported: only a decision id is")
        binding = node.get(f"{{{CAMUNDA_NS}}}decisionRefBinding", "latest")
        if binding not in ("latest", "deployment"):
            # the decision comes with the model's own deployment: there is no other version to bind to
            raise self._refused(
                f"camunda:decisionRefBinding {binding!r} is not supported: a decision runs as deployed with its model"
            )
        variable = node.get(f"{{{CAMUNDA_NS}}}resultVariable")
        if not variable:
            return decision_id, Placement("merge")
        mapping = node.get(f"{{{CAMUNDA_NS}}}mapDecisionResult", "resultList")
        if mapping not in CAMUNDA_MAPPINGS:
            raise self._refused(f"camunda:mapDecisionResult {mapping!r}: one of {', '.join(CAMUNDA_MAPPINGS)}")
        return decision_id, Placement("camunda", _variable(variable, "camunda:resultVariable", self), mapping)

    def _zeebe(self, called: etree._Element) -> tuple[str, Placement]:
        decision_id = camunda8.name_of(called.get("decisionId", ""), "zeebe:calledDecision decisionId", self.node,
                                       self.filename, self.process_parser.parser.feel)  # fmt: skip
        variable = called.get("resultVariable", "")
        if not variable.strip():
            raise self._refused("zeebe:calledDecision needs a resultVariable: the decision's result goes there")
        return decision_id, Placement("zeebe", _variable(variable, "zeebe:calledDecision resultVariable", self))

    def _refused(self, message: str) -> ValidationException:
        return ValidationException(message, node=self.node, file_name=self.filename)


def _variable(name: str, what: str, parser: DecisionTaskParser) -> str:
    if not name.strip().isidentifier():
        raise parser._refused(f"{what} {name!r} is not a variable name")
    return name.strip()


def _table(dmn_parser: Any, decision_id: str) -> Table:
    decision = dmn_parser.decision
    table = decision.decisionTables[0]
    element = _table_element(dmn_parser.node, decision_id)
    aggregation = element.get("aggregation") if element is not None else None
    return Table(decision_id, str(table.hit_policy).upper(), aggregation.upper() if aggregation else None,
                 tuple(str(o.name or o.label) for o in table.outputs))  # fmt: skip


def _table_element(root: etree._Element, decision_id: str) -> etree._Element | None:
    found = root.xpath(".//*[local-name()='decision'][@id=$id]/*[local-name()='decisionTable']", id=decision_id)
    return found[0] if found else None


def problems(root: etree._Element) -> list[tuple[str | None, int | None, str]]:
    """Decision tables of a DMN file whose hit policy cannot run: (table id, line, why)."""
    found = []
    for table in root.xpath(".//*[local-name()='decisionTable']"):
        policy = (table.get("hitPolicy") or "UNIQUE").upper()
        aggregation = table.get("aggregation")
        outputs = table.xpath("./*[local-name()='output']")
        why = None
        if policy not in (*SINGLE_HIT, *MULTIPLE_HIT):
            why = f"hit policy {policy} is not supported (as in Camunda): use UNIQUE, ANY, FIRST, RULE ORDER or COLLECT"
        elif aggregation and policy != "COLLECT":
            why = f"an aggregation ({aggregation}) belongs to hit policy COLLECT, not {policy}"
        elif aggregation and aggregation.upper() not in AGGREGATIONS:
            why = f"aggregation {aggregation} is not supported: use SUM, MIN, MAX or COUNT"
        elif aggregation and len(outputs) != 1:
            why = f"aggregation {aggregation} needs a table with one output; this one has {len(outputs)}"
        if why is not None:
            found.append((table.get("id"), table.sourceline, why))
    return found
