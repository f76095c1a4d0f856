"""Elements the other platform tests leave out, on real Temporal: a sequential multi-instance with a
completion condition, a standard loop with its maximum, a non-interrupting message boundary event that
runs a path per message while its task stays open, interrupting conditional and escalation boundary
events, and an interrupting escalation event subprocess (tests/data/loops_and_boundaries.bpmn)."""

from __future__ import annotations

import asyncio

import httpx

from tests.helpers import DATA, completed_history, deploy, start, take_and_complete, wait_for, wait_for_tasks

MODEL = DATA / "loops_and_boundaries.bpmn"


async def test_a_sequential_multi_instance_stops_at_its_completion_condition_and_a_loop_at_its_condition(
    api: httpx.AsyncClient,
) -> None:
    await deploy(api, MODEL)
    done = await wait_for(api, await start(api, "sequential_scores", {"parcels": [1, 2, 4, 5], "tries": 0}),
                          "completed")  # fmt: skip
    # one parcel after another: the third scores 12, and the fourth is never scored
    assert done["variables"]["scores"] == [3, 6, 12], done["variables"]
    assert done["variables"]["tries"] == 3  # tried while tries < 3, the condition tested after each try
    history = await completed_history(api, done["id"])
    scored = [r for r in history if r["element_id"] == "score_each" and r["action"] == "element.completed"]
    tried = [r for r in history if r["element_id"] == "retry" and r["action"] == "element.completed"]
    assert len(scored) == 4 and len(tried) == 4  # each instance and each iteration, then the element itself

    capped = await wait_for(api, await start(api, "sequential_scores", {"parcels": [], "tries": -10}), "completed")
    assert capped["variables"]["tries"] == -5 and capped["variables"]["scores"] == []  # loopMaximum="5"


async def test_a_non_interrupting_message_boundary_event_runs_its_path_beside_the_open_task(
    api: httpx.AsyncClient,
) -> None:
    await deploy(api, MODEL)
    instance = await start(api, "order_notes", {}, business_key="ORD-77")
    [review] = await wait_for_tasks(api, instance)
    for _ in range(300):  # the subscription is listed a moment after the task opens
        sent = await api.post("/messages", json={"name": "order-note", "correlation_key": "ORD-77",
                                                 "variables": {"author": "ops"}})  # fmt: skip
        if sent.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert sent.status_code == 200, sent.text
    # the note's path opens its own task beside the review, which stays open
    tasks = {t["element_id"]: t for t in await wait_for_tasks(api, instance, count=2)}
    assert set(tasks) == {"n_review", "read_note"} and tasks["n_review"]["id"] == review["id"], tasks
    # the boundary event listens on while the review is open (as in Camunda): each note its own path
    for author in ("sales", "legal"):
        again = await _send_note(api, author)
        assert again.status_code == 200, again.text
    notes = [t for t in await wait_for_tasks(api, instance, count=4) if t["element_id"] == "read_note"]
    assert len(notes) == 3 and review["id"] in {t["id"] for t in await wait_for_tasks(api, instance)}, notes
    for note in notes:
        assert (await take_and_complete(api, note, {})).status_code == 200
    assert (await take_and_complete(api, review, {})).status_code == 200
    done = await wait_for(api, instance, "completed")
    assert {"noted", "read_note", "note_end", "n_review", "n_end"} <= set(done["completed"]), done
    # once the review is done nobody listens
    assert (await _send_note(api, "late")).status_code == 404
    history = await completed_history(api, instance)
    received = [r["data"]["variables"] for r in history if r["action"] == "message.received"]
    assert received == [{"author": "ops"}, {"author": "sales"}, {"author": "legal"}], received


async def _send_note(api: httpx.AsyncClient, author: str) -> httpx.Response:
    """A note for order ORD-77; the fresh boundary event is listed a moment after the last one fired."""
    for _ in range(300):
        sent = await api.post("/messages", json={"name": "order-note", "correlation_key": "ORD-77",
                                                 "variables": {"author": author}})  # fmt: skip
        if sent.status_code != 404 or author == "late":
            return sent
        await asyncio.sleep(0.1)
    return sent


async def test_an_interrupting_conditional_boundary_event_takes_the_task_away(api: httpx.AsyncClient) -> None:
    await deploy(api, MODEL)
    instance = await start(api, "outgrown_review", {"amount": 300})
    [task] = await wait_for_tasks(api, instance)
    changed = await api.patch(f"/instances/{instance}/variables", json={"variables": {"amount": 5000}})
    assert changed.status_code == 200, changed.text
    done = await wait_for(api, instance, "completed")
    assert done["completed"][-2:] == ["outgrown", "o_board"] and "o_review" not in done["completed"], done
    assert (await api.post(f"/tasks/{task['id']}/complete", json={"variables": {}})).status_code in (404, 409)


async def test_an_interrupting_escalation_boundary_event_stops_the_subprocess_that_escalates(
    api: httpx.AsyncClient,
) -> None:
    await deploy(api, MODEL)
    late = await wait_for(api, await start(api, "late_work", {"hours": 9}), "completed")
    assert late["completed"][-2:] == ["l_stopped", "l_stopped_end"], late
    assert "lw_after" not in late["completed"] and "worked" not in late["variables"], late
    on_time = await wait_for(api, await start(api, "late_work", {"hours": 2}), "completed")
    assert on_time["variables"]["worked"] is True and on_time["completed"][-1] == "l_done", on_time


async def test_an_interrupting_escalation_event_subprocess_ends_the_rest_of_the_process(
    api: httpx.AsyncClient,
) -> None:
    await deploy(api, MODEL)
    instance = await start(api, "urgent_order", {})
    done = await wait_for(api, instance, "completed")
    assert done["variables"] == {"handled": True}, done
    assert {"u_handle", "u_handled"} <= set(done["completed"]) and "u_clerk" not in done["completed"], done
    assert (await api.get("/tasks", params={"instance_id": instance})).json() == []
