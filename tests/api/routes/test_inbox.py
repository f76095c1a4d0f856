"""The inbox's semantics: assignment from the model, who sees and works which task, claims, forms,
four-eyes and the audit trail, on the real API, Temporal and database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api.routes.test_api_keys import bearer
from tests.helpers import DATA, deploy, start, wait_for

REVIEW = (DATA / "inbox_review.bpmn", DATA / "review_form.json")
GOOD = {"decision": "approve", "amount_approved": 1200}


class Person:
    def __init__(self, api: httpx.AsyncClient, name: str, headers: dict[str, str]) -> None:
        self.api, self.name, self.headers = api, name, headers

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.api.get(path, params=params, headers=self.headers)

    async def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.api.post(path, json=body or {}, headers=self.headers)

    async def complete(self, task_id: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        return await self.post(f"/tasks/{task_id}/complete", {"variables": variables or {}})

    async def inbox(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.get("/tasks", **params)
        assert response.status_code == 200, response.text
        tasks: list[dict[str, Any]] = response.json()
        return tasks


async def _person(api: httpx.AsyncClient, role: str, *groups: str) -> Person:
    name = f"{role}-{uuid.uuid4().hex[:8]}"
    response = await api.post("/api-keys", json={"name": name, "roles": [role], "groups": list(groups)})
    assert response.status_code == 201, response.text
    return Person(api, name, bearer(response.json()["key"]))


@pytest.fixture
async def people(api: httpx.AsyncClient) -> dict[str, Person]:
    await deploy(api, *REVIEW, expect=None)
    return {
        "alice": await _person(api, "approver", "requesters", "reviewers"),
        "bob": await _person(api, "approver", "reviewers"),
        "carol": await _person(api, "approver", "reviewers"),
        "erin": await _person(api, "approver", "managers"),
        "olga": await _person(api, "operator", "reviewers"),  # starts the instances
    }


async def _task(who: Person, instance_id: str, element_id: str, timeout: float = 30) -> dict[str, Any]:
    """The open task of `element_id`, as the operator-wide list shows it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await who.api.get("/tasks", params={"instance_id": instance_id, "all": "true"})
        found = [t for t in response.json() if t["element_id"] == element_id]
        if found:
            return found[0]
        assert asyncio.get_running_loop().time() < deadline, f"no open task {element_id} in {instance_id}"
        await asyncio.sleep(0.1)


async def _start_review(people: dict[str, Person], amount: int = 1500) -> str:
    response = await people["olga"].post(
        "/instances",
        {
            "definition_key": "inbox_review",
            "variables": {"requester": people["alice"].name, "amount": amount},
        },
    )
    assert response.status_code == 201, response.text
    instance_id: str = response.json()["id"]
    return instance_id


async def _to_review(people: dict[str, Person], amount: int = 1500) -> tuple[str, dict[str, Any]]:
    instance_id = await _start_review(people, amount)
    submit = await _task(people["olga"], instance_id, "submit")
    assert (await people["alice"].complete(submit["id"])).status_code == 200
    return instance_id, await _task(people["olga"], instance_id, "review")


async def test_assignment_comes_from_the_model(people: dict[str, Person]) -> None:
    alice, bob = people["alice"], people["bob"]
    instance_id = await _start_review(people)
    submit = await _task(people["olga"], instance_id, "submit")
    # zeebe:assignmentDefinition assignee="=requester"; the lane is the candidate group
    assert submit["assignee"] == alice.name
    assert submit["candidate_groups"] == ["requesters"]
    assert submit["priority"] == 70  # "=70 if amount > 1000 else 40"
    created, due = datetime.fromisoformat(submit["created_at"]), datetime.fromisoformat(submit["due_at"])
    assert due - created == timedelta(days=1)  # zeebe:taskSchedule dueDate="P1D"
    assert submit["has_form"] is False
    assert [t["id"] for t in await alice.inbox(instance_id=instance_id)] == [submit["id"]]
    assert await bob.inbox(instance_id=instance_id) == []  # assigned to alice: not bob's
    refused = await bob.complete(submit["id"])
    assert refused.status_code == 403
    assert alice.name in refused.json()["detail"] and "submit" in refused.json()["detail"]
    assert (await alice.complete(submit["id"])).status_code == 200

    review = await _task(people["olga"], instance_id, "review")
    assert review["assignee"] is None and review["candidate_groups"] == ["reviewers"]
    assert review["has_form"] is True and review["priority"] == 50
    # open to the reviewers group: bob sees it, the managers do not
    assert [t["id"] for t in await bob.inbox(instance_id=instance_id)] == [review["id"]]
    assert await people["erin"].inbox(instance_id=instance_id) == []
    assert (await people["erin"].complete(review["id"], GOOD)).status_code == 403


async def test_camunda_7_and_8_assignment(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "camunda_forms.bpmn", DATA / "expense.form", expect=None)
    instance_id = await start(api, "camunda_forms", {"manager": "mia", "team": "finance"})
    operator = Person(api, "admin", {})
    c7 = await _task(operator, instance_id, "c7")
    assert c7["assignee"] == "mia"  # camunda:assignee="${manager}"
    assert c7["candidate_groups"] == ["audit", "finance"]
    assert c7["priority"] == 80
    assert datetime.fromisoformat(c7["due_at"]) == datetime.fromisoformat("2030-01-31T12:00:00+00:00")
    assert (await api.post(f"/tasks/{c7['id']}/assign", json={"assignee": "admin"})).status_code == 200
    assert (await api.post(f"/tasks/{c7['id']}/complete", json={"variables": {}})).status_code == 200
    c8 = await _task(operator, instance_id, "c8")
    assert c8["candidate_groups"] == ["audit", "finance"]  # "=[team, 'audit']"
    assert c8["candidate_users"] == ["erin", "frank"]
    # the Camunda form, mapped onto JSON Schema
    form = (await api.get(f"/tasks/{c8['id']}/form")).json()
    assert form["file"] == "expense.form"
    assert form["schema"]["required"] == ["amount"]
    assert form["schema"]["properties"]["category"]["enum"] == ["travel", "meals"]


async def test_list_filters_sorting_and_pages(people: dict[str, Person]) -> None:
    olga = people["olga"]
    low = await _start_review(people, amount=10)
    high = await _start_review(people, amount=5000)
    mine = {low, high}
    low_task, high_task = await _task(olga, low, "submit"), await _task(olga, high, "submit")
    alice = people["alice"]
    listed = [t for t in await alice.inbox(process="inbox_review", limit=500) if t["instance_id"] in mine]
    assert [t["id"] for t in listed] == [high_task["id"], low_task["id"]]  # priority 70 before 40
    assert [t["priority"] for t in listed] == [70, 40]
    # filters: assignee, candidate group, process, due date; pages
    by_assignee = await olga.inbox(all="true", assignee=alice.name, process="inbox_review", limit=500)
    assert {low_task["id"], high_task["id"]} <= {t["id"] for t in by_assignee}
    assert all(t["assignee"] == alice.name for t in by_assignee)
    grouped = await olga.inbox(all="true", candidate_group="requesters", limit=500)
    assert {low_task["id"], high_task["id"]} <= {t["id"] for t in grouped}
    assert await olga.inbox(all="true", candidate_group="nobody-has-this-group") == []
    assert await olga.inbox(all="true", process="no_such_process") == []
    due = datetime.fromisoformat(high_task["due_at"])
    before = await olga.inbox(all="true", process="inbox_review", due_before=(due + timedelta(seconds=1)).isoformat(),
                              limit=500)  # fmt: skip
    assert high_task["id"] in {t["id"] for t in before}
    assert all(datetime.fromisoformat(t["due_at"]) <= due + timedelta(seconds=1) for t in before)
    first = await alice.inbox(process="inbox_review", limit=1)
    second = await alice.inbox(process="inbox_review", limit=1, offset=1)
    assert len(first) == len(second) == 1 and first[0]["id"] != second[0]["id"]
    # closed tasks by state
    assert (await alice.complete(low_task["id"])).status_code == 200
    completed = await alice.inbox(state="completed", instance_id=low)
    assert [(t["id"], t["closed_by"]) for t in completed] == [(low_task["id"], alice.name)]
    # an approver may not list everyone's tasks
    assert (await alice.get("/tasks", all="true")).status_code == 403


async def test_claim_unclaim_assign_and_their_audit(people: dict[str, Person], api: httpx.AsyncClient) -> None:
    bob, carol, olga = people["bob"], people["carol"], people["olga"]
    instance_id, review = await _to_review(people)
    task_id = review["id"]
    claimed = await bob.post(f"/tasks/{task_id}/claim")
    assert claimed.status_code == 200 and claimed.json()["assignee"] == bob.name
    assert (await bob.post(f"/tasks/{task_id}/claim")).status_code == 200  # again: a no-op
    taken = await carol.post(f"/tasks/{task_id}/claim")
    assert taken.status_code == 409 and bob.name in taken.json()["detail"]
    assert (await carol.complete(task_id, GOOD)).status_code == 403
    assert await carol.inbox(instance_id=instance_id) == []  # held by bob: gone from carol's inbox
    assert (await carol.post(f"/tasks/{task_id}/unclaim")).status_code == 403
    assert (await bob.post(f"/tasks/{task_id}/assign", {"assignee": bob.name})).status_code == 403
    released = await bob.post(f"/tasks/{task_id}/unclaim")
    assert released.status_code == 200 and released.json()["assignee"] is None
    assigned = await olga.post(f"/tasks/{task_id}/assign", {"assignee": carol.name})
    assert assigned.status_code == 200 and assigned.json()["assignee"] == carol.name
    done = await carol.complete(task_id, {**GOOD, "comment": "fine"})
    assert done.status_code == 200, done.text
    assert done.json()["instance_status"] == "completed"
    assert (await carol.post(f"/tasks/{task_id}/claim")).status_code == 409  # closed

    history = (await api.get(f"/instances/{instance_id}/history")).json()
    rows = history["entries"] if isinstance(history, dict) else history
    trail = [(r["action"], r["actor"], (r.get("data") or {}).get("assignee")) for r in rows
             if r["action"].startswith("task.")]  # fmt: skip
    assert trail == [
        ("task.claimed", bob.name, bob.name),
        ("task.unclaimed", bob.name, None),
        ("task.assigned", olga.name, carol.name),
    ]
    [completion] = [r for r in rows if r["action"] == "element.completed" and r["element_id"] == "review"]
    assert completion["actor"] == carol.name
    assert completion["data"] == {"variables": {**GOOD, "comment": "fine"}}


async def test_two_claims_or_completions_at_once_one_wins(people: dict[str, Person]) -> None:
    bob, carol = people["bob"], people["carol"]
    _, review = await _to_review(people)
    claims = await asyncio.gather(bob.post(f"/tasks/{review['id']}/claim"), carol.post(f"/tasks/{review['id']}/claim"))
    assert sorted(r.status_code for r in claims) == [200, 409]

    _, review = await _to_review(people)
    done = await asyncio.gather(bob.complete(review["id"], GOOD), carol.complete(review["id"], GOOD))
    assert sorted(r.status_code for r in done) == [200, 409]


async def test_completion_data_must_fit_the_form(people: dict[str, Person], api: httpx.AsyncClient) -> None:
    bob = people["bob"]
    instance_id, review = await _to_review(people)
    form = (await bob.get(f"/tasks/{review['id']}/form")).json()
    assert form["file"] == "review_form.json"
    assert form["schema"]["required"] == ["decision", "amount_approved"]
    missing = await bob.complete(review["id"], {"decision": "approve"})
    assert missing.status_code == 422
    assert missing.json()["detail"] == [
        {"loc": ["body", "variables", "amount_approved"], "msg": "'amount_approved' is required"}
    ]
    wrong = await bob.complete(review["id"], {"decision": "maybe", "amount_approved": -5})
    assert wrong.status_code == 422
    assert {tuple(e["loc"]) for e in wrong.json()["detail"]} == {
        ("body", "variables", "amount_approved"),
        ("body", "variables", "decision"),
    }
    # nothing was lost: the task is still open, and good data completes it
    assert (await bob.get(f"/tasks/{review['id']}")).json()["state"] == "open"
    assert (await bob.complete(review["id"], GOOD)).status_code == 200
    assert (await wait_for(api, instance_id, "completed"))["variables"]["decision"] == "approve"
    no_form = await api.get(f"/tasks/{(await _task(people['olga'], await _start_review(people), 'submit'))['id']}/form")
    assert no_form.status_code == 404


async def test_four_eyes(people: dict[str, Person]) -> None:
    alice, olga, bob = people["alice"], people["olga"], people["bob"]
    _, review = await _to_review(people)
    # olga started the instance, alice submitted it: both are reviewers, neither may review it
    started = await olga.complete(review["id"], GOOD)
    assert started.status_code == 403 and "started this instance" in started.json()["detail"]
    submitted = await alice.post(f"/tasks/{review['id']}/claim")
    assert submitted.status_code == 403 and "completed task 'submit'" in submitted.json()["detail"]
    assert (await olga.post(f"/tasks/{review['id']}/assign", {"assignee": alice.name})).status_code == 403
    assert (await alice.complete(review["id"], GOOD)).status_code == 403
    assert (await bob.complete(review["id"], GOOD)).status_code == 200


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('value="starter, submit"', "aimatrix.separateFrom names 'nobody'"),
        ("review_form.json</", "form 'missing.json' is not in the deployment"),
        ('priority="=if amount &gt; 1000 then 70 else 40"', "must be a whole number from 0 to 100"),
        ('name="aimatrix.escalate.priority" value="90"', "unknown escalation setting"),
        ('dueDate="P1D"', "ISO 8601 date-time or duration"),
        ('assignee="=requester"', "FEEL"),
    ],
)
async def test_bad_settings_are_refused_at_deploy(api: httpx.AsyncClient, change: str, message: str) -> None:
    replacement = {
        'value="starter, submit"': 'value="starter, nobody"',
        "review_form.json</": "missing.json</",
        'priority="=if amount &gt; 1000 then 70 else 40"': 'priority="101"',
        'name="aimatrix.escalate.priority" value="90"': 'name="aimatrix.escalate.colour" value="red"',
        'dueDate="P1D"': 'dueDate="next tuesday"',
        'assignee="=requester"': "assignee=\"=__import__('os')\"",
    }[change]
    xml = (DATA / "inbox_review.bpmn").read_text()
    assert change in xml
    files = [
        ("files", ("inbox_review.bpmn", xml.replace(change, replacement).encode(), "application/xml")),
        ("files", ("review_form.json", (DATA / "review_form.json").read_bytes(), "application/json")),
    ]
    response = await api.post("/deployments", files=files)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert message in error["message"], error
    assert error["element_id"] in ("review", "submit", "remind") and error["line"] > 1


async def test_bad_form_files_are_refused(api: httpx.AsyncClient) -> None:
    files = [
        ("files", ("inbox_review.bpmn", (DATA / "inbox_review.bpmn").read_bytes(), "application/xml")),
        (
            "files",
            ("review_form.json", b'{"type": "object", "properties": {"x": {"type": "colour"}}}', "application/json"),
        ),
    ]
    response = await api.post("/deployments", files=files)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["file"] == "review_form.json" and "not a valid JSON Schema" in error["message"]


async def test_me(people: dict[str, Person]) -> None:
    me = (await people["alice"].get("/me")).json()
    assert me == {"subject": people["alice"].name, "roles": ["approver"], "groups": ["requesters", "reviewers"],
                  "tenant": None}  # fmt: skip
