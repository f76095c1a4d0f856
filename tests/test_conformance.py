"""The external BPMN conformance corpus through the real platform, against SpiffWorkflow in memory.

Each executable case of the corpus that uses only elements this engine runs is one test: deploy
its files, start it, complete its open tasks with the manifest's inputs, and compare the final
status, data and completed elements (and the order tasks were offered) with the same case run by
SpiffWorkflow in memory, and with what upstream's own tests assert where the manifest records it.
See tests/conformance_support.py for the driving rules and for why cases are out of scope.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from lxml import etree

from bpmn.definitions import validate_upload
from tests.conformance_support import (
    Case,
    check_expected,
    in_scope_cases,
    invalid_cases,
    pick_definition,
    refused_executable_cases,
    run_in_memory,
    run_on_platform,
)

SPIFF = "spiffworkflow/tests/SpiffWorkflow/"

IN_SCOPE = in_scope_cases()
CASES = IN_SCOPE
# Raise these when cases join; a drop means a case silently left the suite.
MIN_IN_SCOPE = 45
MIN_CASES = 44


def test_the_suite_keeps_every_case_it_had() -> None:
    assert len(IN_SCOPE) >= MIN_IN_SCOPE, [c.name for c in IN_SCOPE]
    assert len(CASES) >= MIN_CASES, [c.name for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_case_runs_on_the_platform_as_in_spiffworkflow(api: httpx.AsyncClient, case: Case) -> None:
    reference = await asyncio.to_thread(run_in_memory, case)
    check_expected(case, reference)
    key = pick_definition(case, validate_upload(case.upload())).key
    platform = await run_on_platform(api, case, key, may_stall=reference.status == "running")
    check_expected(case, platform)
    assert (platform.status, platform.error is None) == (reference.status, reference.error is None), (
        platform.error,
        reference.error,
    )
    assert platform.steps == reference.steps, "the platform offered other tasks"
    assert platform.data == reference.data
    assert sorted(platform.completed) == sorted(reference.completed), (
        f"only on the platform: {sorted(set(platform.completed) - set(reference.completed))}, "
        f"only in memory: {sorted(set(reference.completed) - set(platform.completed))}"
    )
    # Concurrent branches may finish in any order (script tasks run on the sandbox pool, in parallel),
    # but nothing may complete before what leads to it: every sequence flow the reference ran forwards
    # runs forwards on the platform too.
    for source, target in _flows(case):
        ran = source in reference.completed and target in reference.completed
        if ran and reference.completed.index(source) < reference.completed.index(target):
            assert platform.completed.index(source) < platform.completed.index(target), (
                f"{target} completed before {source}, which leads to it: {platform.completed}"
            )


def _flows(case: Case) -> list[tuple[str, str]]:
    flows = []
    for content in case.upload().values():
        root = etree.fromstring(content, etree.XMLParser(resolve_entities=False, no_network=True))
        for flow in root.iter("{http://www.omg.org/spec/BPMN/20100524/MODEL}sequenceFlow"):
            flows.append((flow.get("sourceRef", ""), flow.get("targetRef", "")))
    return flows


async def test_every_invalid_case_is_refused_at_deploy(api: httpx.AsyncClient) -> None:
    cases = invalid_cases()
    assert len(cases) >= 17
    for case in cases:
        files = [("files", (name, content, "application/xml")) for name, content in case.upload().items()]
        response = await api.post("/deployments", files=files)
        assert 400 <= response.status_code < 500, (case.name, response.status_code, response.text)
        assert response.json().get("detail"), (case.name, response.text)


async def test_every_executable_case_the_platform_refuses_is_refused_naming_where(api: httpx.AsyncClient) -> None:
    """What upstream runs and this platform does not is refused at deploy, each problem with its file
    and the element or line it is at: never deployed to do something else."""
    cases = refused_executable_cases()
    assert len(cases) >= 12
    for case in cases:
        files = [("files", (name, content, "application/xml")) for name, content in case.upload().items()]
        response = await api.post("/deployments", files=files)
        assert response.status_code == 422, (case.name, response.status_code, response.text)
        problems = response.json()["detail"]
        assert problems, (case.name, response.text)
        for problem in problems:
            assert problem["file"] in case.upload() and problem["message"], (case.name, problem)
            assert problem["element_id"] or problem["line"], (case.name, problem)
