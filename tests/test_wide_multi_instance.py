"""A wide parallel multi-instance: its results arrive in batches, and SpiffWorkflow's refresh of waiting
tasks runs once per batch instead of once per result (bpmn/batched_updates.py). The outcome must be
what completing them one by one gives; the platform run is in tests/test_continue_as_new.py."""

from __future__ import annotations

import random

import pytest
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow

from bpmn import batched_updates, runtime
from bpmn.definitions import content_hash, load_process
from tests.helpers import DATA

pytestmark = pytest.mark.backend_free  # no platform database: once, in the SQLite pass


def _run(items: int, *, batched: bool, batch: int = 100) -> BpmnWorkflow:
    files = {"echo_each.bpmn": (DATA / "echo_each.bpmn").read_text()}
    workflow = runtime.new_workflow(
        load_process(files, "echo_each", content_hash(files)), {"items": list(range(items)), "base_url": ""}
    )
    runtime.run_engine(workflow)
    tasks = runtime.started_external_tasks(workflow)
    random.Random(7).shuffle(tasks)  # concurrent activities finish in any order
    for start in range(0, len(tasks), batch):
        with batched_updates.deferred(workflow, enabled=batched):
            for task in tasks[start : start + batch]:
                runtime.complete_service_task(task, {"n": runtime.evaluate_params(task)["json"]["n"]})
        runtime.run_engine(workflow)
    return workflow


def test_batched_results_end_as_results_one_by_one() -> None:
    one_by_one = _run(400, batched=False)
    batched = _run(400, batched=True)
    assert one_by_one.completed and batched.completed
    assert runtime.variables(batched) == runtime.variables(one_by_one)
    assert [a["n"] for a in runtime.variables(batched)["answers"]] == list(range(400))  # in item order
    assert runtime.completed_elements(batched) == runtime.completed_elements(one_by_one)
    states = sorted((t.task_spec.name, t.state) for t in batched.tasks.values())
    assert states == sorted((t.task_spec.name, t.state) for t in one_by_one.tasks.values())


def test_a_batch_that_ends_the_instance_ends_it() -> None:
    workflow = _run(50, batched=True, batch=50)  # one batch of every result: the join happens in the flush
    assert workflow.completed and runtime.completed_elements(workflow)[-1] == "end"
