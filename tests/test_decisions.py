"""Business rule tasks on real Temporal: decisions called the Camunda 7 way (`camunda:decisionRef`,
`camunda:resultVariable`, `camunda:mapDecisionResult`) and the Camunda 8 way (`zeebe:calledDecision`),
every hit policy Camunda runs (UNIQUE, ANY, FIRST, RULE ORDER, COLLECT with its aggregations), and the
tables and tasks refused at deploy, naming the element."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

import httpx
import pytest
from SpiffWorkflow.exceptions import SpiffWorkflowException

from bpmn import decisions, runtime
from bpmn.definitions import load_process, validate_upload
from tests.helpers import completed_history, completion, deploy_text, start, wait_for

_DMN = "https://www.omg.org/spec/DMN/20191111/MODEL/"


def _dmn(decision: str, rules: list[tuple[str, list[str]]], *, outputs: tuple[str, ...] = ("value",),
         policy: str = "UNIQUE", aggregation: str | None = None) -> str:  # fmt: skip
    """One decision table over the input `amount`: each rule is (amount test, output entries)."""
    aggregate = f' aggregation="{aggregation}"' if aggregation else ""
    columns = "".join(f'<output id="{decision}_{name}" name="{name}" typeRef="string" />' for name in outputs)
    body = "".join(
        f'<rule id="{decision}_r{n}"><inputEntry id="{decision}_i{n}"><text>{escape(test)}</text></inputEntry>'
        + "".join(
            f'<outputEntry id="{decision}_o{n}_{k}"><text>{escape(v)}</text></outputEntry>'
            for k, v in enumerate(values)
        )
        + "</rule>"
        for n, (test, values) in enumerate(rules, start=1)
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<definitions xmlns="{_DMN}" id="{decision}_defs" name="d" '
        f'namespace="http://camunda.org/schema/1.0/dmn">\n<decision id="{decision}" name="{decision}">\n'
        f'<decisionTable id="{decision}_table" hitPolicy="{policy}"{aggregate}>\n'
        f'<input id="{decision}_in"><inputExpression id="{decision}_expr" typeRef="number"><text>amount</text>'
        f"</inputExpression></input>{columns}{body}</decisionTable>\n</decision>\n</definitions>"
    )


def _process(key: str, tasks: list[str]) -> str:
    """A process running the given business rule tasks (their XML, ids t1, t2, ...) one after another."""
    flows, steps, previous = [], [], "start"
    for n, task in enumerate(tasks, start=1):
        flows.append(f'<bpmn:sequenceFlow id="f{n}" sourceRef="{previous}" targetRef="t{n}" />')
        steps.append(task.format(id=f"t{n}", incoming=f"f{n}", outgoing=f"f{n + 1}"))
        previous = f"t{n}"
    last = len(tasks) + 1
    flows.append(f'<bpmn:sequenceFlow id="f{last}" sourceRef="{previous}" targetRef="end" />')
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/'
        '20100524/MODEL" xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
        'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="defs" targetNamespace="t">\n'
        f'<bpmn:process id="{key}" isExecutable="true">\n'
        '<bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>\n'
        + "\n".join(steps)
        + f'\n<bpmn:endEvent id="end"><bpmn:incoming>f{last}</bpmn:incoming></bpmn:endEvent>\n'
        + "\n".join(flows)
        + "\n</bpmn:process>\n</bpmn:definitions>"
    )


def _camunda(decision: str, variable: str | None = None, mapping: str | None = None) -> str:
    braced = decision.replace("{", "{{").replace("}", "}}")  # the task is a format template
    attributes = f'camunda:decisionRef="{braced}"'
    if variable:
        attributes += f' camunda:resultVariable="{variable}"'
    if mapping:
        attributes += f' camunda:mapDecisionResult="{mapping}"'
    return (
        f'<bpmn:businessRuleTask id="{{id}}" {attributes}><bpmn:incoming>{{incoming}}</bpmn:incoming>'
        "<bpmn:outgoing>{outgoing}</bpmn:outgoing></bpmn:businessRuleTask>"
    )


def _zeebe(decision: str, variable: str | None = "result") -> str:
    result = f' resultVariable="{variable}"' if variable else ""
    return (
        '<bpmn:businessRuleTask id="{id}"><bpmn:extensionElements>'
        f'<zeebe:calledDecision decisionId="{decision}"{result} /></bpmn:extensionElements>'
        "<bpmn:incoming>{incoming}</bpmn:incoming><bpmn:outgoing>{outgoing}</bpmn:outgoing></bpmn:businessRuleTask>"
    )


async def _deploy(api: httpx.AsyncClient, files: dict[str, str]) -> httpx.Response:
    body = [("files", (name, text.encode(), "application/xml")) for name, text in files.items()]
    return await api.post("/deployments", files=body)


_TIER = _dmn("tier", [("> 1000", ['"gold"']), ("<= 1000", ['"silver"'])])
_OFFER = _dmn("offer", [("> 1000", ["0.1", '"big order"']), ("<= 1000", ["0", '"none"'])], outputs=("rate", "reason"))
_TAGS = _dmn("tags", [("> 1000", ['"big"']), ("> 500", ['"mid"']), ("< 100", ['"small"'])], policy="COLLECT")
_OFFERS = _dmn("offers", [("> 1000", ["0.1", '"big"']), ("> 10", ["0.02", '"any"'])], outputs=("rate", "reason"),
               policy="RULE ORDER")  # fmt: skip
_POINTS = _dmn("points", [("> 1000", ["50"]), ("> 500", ["20"]), ("> 0", ["5"])], policy="COLLECT", aggregation="SUM")
_COUNTED = _dmn("counted", [("> 1000", ["50"]), ("> 500", ["20"]), ("> 5000", ["5"])], policy="COLLECT",
                aggregation="COUNT")  # fmt: skip
_FIRST = _dmn("first", [("> 500", ['"high"']), ("> 0", ['"low"'])], policy="FIRST")
_ANY = _dmn("agree", [("> 500", ['"review"']), ("> 1000", ['"review"'])], policy="ANY")
_TABLES = {
    f"{name}.dmn": table
    for name, table in [("tier", _TIER), ("offer", _OFFER), ("tags", _TAGS), ("offers", _OFFERS),
                        ("points", _POINTS), ("counted", _COUNTED), ("first", _FIRST), ("agree", _ANY)]
}  # fmt: skip


async def _run(api: httpx.AsyncClient, key: str, tasks: list[str], amount: float) -> dict[str, Any]:
    deployed = await _deploy(api, {f"{key}.bpmn": _process(key, tasks), **_TABLES})
    assert deployed.status_code == 201, deployed.text
    instance = await start(api, key, {"amount": amount})
    return await wait_for(api, instance, "completed")


async def test_camunda_7_result_variables_take_each_mapping(api: httpx.AsyncClient) -> None:
    tasks = [
        _camunda("tier", "tier", "singleEntry"),
        _camunda("offer", "offer", "singleResult"),
        _camunda("tags", "tags", "collectEntries"),
        _camunda("offers", "offers"),  # resultList, the default
        _camunda("first", "level", "singleEntry"),
        _camunda("agree", "verdict", "singleEntry"),
    ]
    done = await _run(api, "c7_mappings", tasks, 1500)
    variables = done["variables"]
    assert variables["tier"] == "gold"
    assert variables["offer"] == {"rate": 0.1, "reason": "big order"}
    assert variables["tags"] == ["big", "mid"]
    assert variables["offers"] == [{"rate": 0.1, "reason": "big"}, {"rate": 0.02, "reason": "any"}]
    assert variables["level"] == "high" and variables["verdict"] == "review"
    history = await completed_history(api, done["id"])
    # the audit says which decision ran, which rules matched and what they set
    assert completion(history, "t1")["data"] == {
        "decision": "tier", "hit_policy": "UNIQUE", "rules": ["tier_r1"], "set": {"tier": "gold"}
    }  # fmt: skip
    assert completion(history, "t3")["data"]["rules"] == ["tags_r1", "tags_r2"]
    assert [e["element_id"] for e in history if e["action"] == "element.completed"][1:7] == [
        "t1", "t2", "t3", "t4", "t5", "t6"
    ]  # fmt: skip


async def test_without_a_result_variable_camunda_7_outputs_merge_into_the_data(api: httpx.AsyncClient) -> None:
    done = await _run(api, "c7_merged", [_camunda("offer"), _camunda("tags")], 700)
    history = await completed_history(api, done["id"])
    assert completion(history, "t1")["data"]["set"] == {"rate": 0, "reason": "none"}
    assert completion(history, "t2")["data"]["set"] == {"value": ["mid"]}
    # as SpiffWorkflow's Camunda parser reads it: a single hit's outputs, and each output's collected values
    assert {k: done["variables"][k] for k in ("rate", "reason", "value")} == {"rate": 0, "reason": "none",
                                                                           "value": ["mid"]}  # fmt: skip


async def test_zeebe_called_decisions_take_zeebes_result_shapes(api: httpx.AsyncClient) -> None:
    tasks = [
        _zeebe("tier", "tier"),
        _zeebe("offer", "offer"),
        _zeebe("tags", "tags"),
        _zeebe("offers", "offers"),
        _zeebe("points", "points"),
        _zeebe("counted", "counted"),
    ]
    done = await _run(api, "zeebe_decisions", tasks, 800)
    variables = done["variables"]
    assert variables["tier"] == "silver"  # one output: its value
    assert variables["offer"] == {"rate": 0, "reason": "none"}  # several: a map
    assert variables["tags"] == ["mid"]  # a multiple hit: a list
    assert variables["offers"] == [{"rate": 0.02, "reason": "any"}]
    assert variables["points"] == 25 and variables["counted"] == 1  # SUM of 20 and 5; one rule over 500


async def test_a_decision_that_breaks_its_hit_policy_fails_the_instance_naming_the_rules(
    api: httpx.AsyncClient,
) -> None:
    overlapping = _dmn("strict", [("> 100", ['"a"']), ("> 500", ['"b"'])])
    disagreeing = _dmn("disagree", [("> 100", ['"a"']), ("> 500", ['"b"'])], policy="ANY")
    for key, table, decision in (("unique_broken", overlapping, "strict"), ("any_broken", disagreeing, "disagree")):
        xml = _process(key, [_zeebe(decision)])
        deployed = await _deploy(api, {f"{key}.bpmn": xml, f"{decision}.dmn": table})
        assert deployed.status_code == 201, deployed.text
        failed = await wait_for(api, await start(api, key, {"amount": 900}), "failed")
        assert f"decision '{decision}'" in failed["error"] and "rules 1, 2" in failed["error"], failed["error"]
        # below both thresholds' overlap, the same table decides
        fine = await wait_for(api, await start(api, key, {"amount": 200}), "completed")
        assert fine["variables"]["result"] == "a"


async def test_tables_and_tasks_that_cannot_run_are_refused_at_deploy(api: httpx.AsyncClient) -> None:
    priority = _dmn("ranked", [("> 1", ['"x"'])], policy="PRIORITY")
    summed_pair = _dmn("pair", [("> 1", ["1", "2"])], outputs=("a", "b"), policy="COLLECT", aggregation="SUM")
    refused = await _deploy(api, {"ranked.bpmn": _process("ranked_use", [_zeebe("ranked")]), "ranked.dmn": priority})
    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["detail"]
    assert problem["file"] == "ranked.dmn" and problem["element_id"] == "ranked_table" and problem["line"] == 4
    assert "hit policy PRIORITY is not supported" in problem["message"], problem
    refused = await _deploy(api, {"pair.bpmn": _process("pair_use", [_zeebe("pair")]), "pair.dmn": summed_pair})
    assert refused.status_code == 422, refused.text
    assert "needs a table with one output" in refused.json()["detail"][0]["message"]

    for task, expected in (
        (_zeebe("tier", None), "zeebe:calledDecision needs a resultVariable"),
        (_camunda("${chosen}"), "camunda:decisionRef '${chosen}' is not supported"),
        (_camunda("tier", "r", "everything"), "camunda:mapDecisionResult 'everything'"),
        (_camunda("tier").replace("camunda:decisionRef", 'camunda:decisionRefBinding="version" camunda:decisionRef'),
         "camunda:decisionRefBinding 'version' is not supported"),
        ('<bpmn:businessRuleTask id="{id}"><bpmn:incoming>{incoming}</bpmn:incoming><bpmn:outgoing>{outgoing}'
         "</bpmn:outgoing></bpmn:businessRuleTask>", "a business rule task needs a decision"),
    ):  # fmt: skip
        response = await deploy_text(api, "bad_task.bpmn", _process("bad_task", [task]))
        if response.status_code != 422:  # the decision file is needed for the others
            response = await _deploy(api, {"bad_task.bpmn": _process("bad_task", [task]), "tier.dmn": _TIER})
        assert response.status_code == 422, (expected, response.text)
        [problem] = response.json()["detail"]
        assert problem["element_id"] == "t1" and expected in problem["message"], (expected, problem)


def _in_memory(tasks: list[str], tables: dict[str, str], amount: float, *, strict: bool = True) -> Any:
    """The process run by SpiffWorkflow in this process: what the engine decides, without a backend.
    `strict=False` is a history recorded before hit policies were honoured (the engine's patch)."""
    files = {"p.bpmn": _process("in_memory", tasks), **tables}
    [definition] = validate_upload({name: text.encode() for name, text in files.items()})
    process = load_process(definition.files, definition.key, definition.hash)
    workflow = runtime.new_workflow(process, {"amount": amount})
    setattr(workflow, decisions.STRICT, strict)
    runtime.run_engine(workflow)
    return workflow


@pytest.mark.backend_free
def test_aggregations_take_the_minimum_maximum_and_a_count_of_none() -> None:
    rules = [("> 1000", ["50"]), ("> 500", ["20"]), ("> 5000", ["5"])]
    tables = {
        "low.dmn": _dmn("low", rules, policy="COLLECT", aggregation="MIN"),
        "high.dmn": _dmn("high", rules, policy="COLLECT", aggregation="MAX"),
        "none.dmn": _dmn("none", rules, policy="COLLECT", aggregation="COUNT"),
        "nosum.dmn": _dmn("nosum", rules, policy="COLLECT", aggregation="SUM"),
    }
    tasks = [_zeebe("low", "low"), _zeebe("high", "high"), _zeebe("none", "none"), _zeebe("nosum", "nosum")]
    assert runtime.variables(_in_memory(tasks, tables, 6000))["low"] == 5
    assert runtime.variables(_in_memory(tasks, tables, 6000))["high"] == 50
    empty = runtime.variables(_in_memory(tasks, tables, 100))
    assert empty["none"] == 0 and empty["nosum"] is None  # nothing matched: a count of 0, no sum


@pytest.mark.backend_free
def test_a_camunda_mapping_that_does_not_fit_the_result_fails_naming_it() -> None:
    tables = {"tags.dmn": _TAGS, "offer.dmn": _OFFER}
    for task, amount, expected in (
        (_camunda("tags", "t", "singleEntry"), 1500, "singleEntry needs at most one rule"),
        (_camunda("offer", "o", "collectEntries"), 1500, "collectEntries needs one output per rule"),
        (_camunda("offer", "o", "singleEntry"), 1500, "singleEntry needs one output"),
    ):
        with pytest.raises(SpiffWorkflowException, match=expected):
            _in_memory([task], tables, amount)
    # no rule matched: no result
    assert runtime.variables(_in_memory([_camunda("tags", "t", "singleResult")], tables, 200)) == {
        "amount": 200, "t": None
    }  # fmt: skip


@pytest.mark.backend_free
def test_histories_from_before_keep_spiffworkflows_reading_of_a_table() -> None:
    """Without the patch, a RULE ORDER table is read as SpiffWorkflow 3.2 reads any table but COLLECT
    (the first matching rule), and a result variable is not set: the outputs merge, as they did."""
    tables = {"offers.dmn": _OFFERS}
    old = runtime.variables(_in_memory([_camunda("offers", "offers")], tables, 1500, strict=False))
    assert old == {"amount": 1500, "rate": 0.1, "reason": "big"}
    new = runtime.variables(_in_memory([_camunda("offers", "offers")], tables, 1500))
    assert new["offers"] == [{"rate": 0.1, "reason": "big"}, {"rate": 0.02, "reason": "any"}]
