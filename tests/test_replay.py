"""Stored histories of finished instances replay against the current code without non-determinism.

The session fixture `workers` also replays every history the test session produced; these stored
ones guard against a change that would break instances started by an older release. Refresh them
with `AIMATRIX_RECORD_HISTORIES=1 make test` when a change is meant to be incompatible (and bump
the workflow with a patch/version marker instead, where instances may still be running).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from lxml import etree
from temporalio.client import WorkflowHistory

from bpmn.definitions import BPMN_NS
from workers.engine import replay_failures

pytestmark = pytest.mark.backend_free  # no platform database: once, in the SQLite pass

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_there_are_stored_histories() -> None:
    assert len(HISTORIES) >= 5, HISTORIES


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_stored_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())  # noqa: ASYNC240 (a small local file)
    failed = await replay_failures([history])
    assert not failed, failed


# What the stored histories must hold between them: every element kind the platform runs (README's
# element table), so that each one's recorded commands are replayed against every change.
REQUIRED_ELEMENTS = {
    "startEvent:none", "startEvent:message", "startEvent:signal", "startEvent:timer", "startEvent:multiple",
    "eventSubProcess:error", "eventSubProcess:escalation", "eventSubProcess:escalation:noninterrupting",
    "eventSubProcess:message", "eventSubProcess:message:noninterrupting", "eventSubProcess:signal",
    "eventSubProcess:signal:noninterrupting", "eventSubProcess:timer", "eventSubProcess:timer:noninterrupting",
    "intermediateCatchEvent:timer", "intermediateCatchEvent:message", "intermediateCatchEvent:signal",
    "intermediateCatchEvent:conditional", "intermediateCatchEvent:multiple", "intermediateThrowEvent:signal",
    "intermediateThrowEvent:message",
    "intermediateThrowEvent:escalation",
    "boundaryEvent:timer", "boundaryEvent:timer:noninterrupting", "boundaryEvent:message",
    "boundaryEvent:message:noninterrupting", "boundaryEvent:signal", "boundaryEvent:signal:noninterrupting",
    "boundaryEvent:error", "boundaryEvent:escalation", "boundaryEvent:escalation:noninterrupting",
    "boundaryEvent:conditional", "boundaryEvent:conditional:noninterrupting", "boundaryEvent:cancel",
    "boundaryEvent:multiple",
    "endEvent:none", "endEvent:terminate", "endEvent:error", "endEvent:escalation", "endEvent:signal",
    "endEvent:message", "endEvent:cancel",
    "task", "userTask", "manualTask", "serviceTask", "scriptTask", "businessRuleTask", "receiveTask", "sendTask",
    "exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway",
    "subProcess", "transaction", "callActivity", "multiInstance:parallel", "multiInstance:sequential",
    "standardLoop",
}  # fmt: skip


def _elements(root: etree._Element) -> set[str]:
    found = set()
    for element in root.iter(f"{{{BPMN_NS}}}*"):
        kind = etree.QName(element).localname
        definitions = [
            etree.QName(child).localname.removesuffix("EventDefinition")
            for child in element
            if isinstance(child.tag, str) and etree.QName(child).localname.endswith("EventDefinition")
        ]
        if kind.endswith("Event"):
            trigger = "multiple" if len(definitions) > 1 else definitions[0] if definitions else "none"
            parent = element.getparent()
            if kind == "startEvent" and parent is not None and parent.get("triggeredByEvent") == "true":
                interrupting = element.get("isInterrupting") != "false"
                found.add(f"eventSubProcess:{trigger}" + ("" if interrupting else ":noninterrupting"))
            else:
                interrupting = element.get("cancelActivity") != "false"
                found.add(f"{kind}:{trigger}" + ("" if interrupting or kind != "boundaryEvent" else ":noninterrupting"))
        elif kind == "multiInstanceLoopCharacteristics":
            found.add("multiInstance:" + ("sequential" if element.get("isSequential") == "true" else "parallel"))
        elif kind == "standardLoopCharacteristics":
            found.add("standardLoop")
        else:
            found.add(kind)
    return found


def test_the_stored_histories_cover_every_element_the_platform_runs() -> None:
    covered: set[str] = set()
    for path in HISTORIES:
        started = json.loads(path.read_text())["events"][0]["workflowExecutionStartedEventAttributes"]
        process_input = json.loads(base64.b64decode(started["input"]["payloads"][0]["data"]))
        for name, text in process_input["files"].items():
            if name.endswith((".bpmn", ".xml")):
                covered |= _elements(etree.fromstring(text.encode()))
    assert covered >= REQUIRED_ELEMENTS, sorted(REQUIRED_ELEMENTS - covered)
