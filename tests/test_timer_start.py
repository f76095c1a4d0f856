"""Timer start events on the real Temporal dev server: a deployed process starts by itself, through
a Temporal Schedule that follows the definition's latest version."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

from activities.scheduled_start import NOT_FOUND_ATTEMPTS, ScheduledStarts
from api.timer_schedules import schedule_id
from tests.helpers import DATA, deploy_text, wait_for
from workflows.contracts import ScheduledStart

XML = (DATA / "timer_start.bpmn").read_text()


def _model(key: str, timer: str, element: str = "timeCycle") -> str:
    return XML.replace('id="timer_start"', f'id="{key}"').replace(
        "<bpmn:timeCycle>R2/PT2S</bpmn:timeCycle>", f"<bpmn:{element}>{timer}</bpmn:{element}>"
    )


async def _instances(api: httpx.AsyncClient, key: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    """Wait until `count` instances of `key` were started and completed; more would be a bug the
    caller checks."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        items: list[dict[str, Any]] = (await api.get("/instances", params={"definition_key": key})).json()["items"]
        if len(items) >= count:
            break
        assert asyncio.get_running_loop().time() < deadline, f"{key}: {items}"
        await asyncio.sleep(0.2)
    for item in items:
        await wait_for(api, item["id"], "completed")
    return items


async def test_a_repeating_timer_starts_instances_by_itself(api: httpx.AsyncClient, client: Client) -> None:
    key = "timer_cycle"
    response = await deploy_text(api, f"{key}.bpmn", _model(key, "R2/PT2S"))
    assert response.status_code == 201, response.text
    description = await client.get_schedule_handle(schedule_id(key)).describe()
    assert description.schedule.state.remaining_actions <= 2
    items = await _instances(api, key, 2)
    await asyncio.sleep(3)  # R2: two and no more
    items = (await api.get("/instances", params={"definition_key": key})).json()["items"]
    assert len(items) == 2 and {i["started_by"] for i in items} == {"timer"}
    body = (await api.get(f"/instances/{items[0]['id']}")).json()
    assert body["status"] == "completed" and body["variables"] == {"reported": True}
    assert body["completed"] == ["every_night", "report", "end"]
    history = (await api.get(f"/instances/{items[0]['id']}/history")).json()
    assert [r["action"] for r in history][:3] == ["instance.start_requested", "instance.started", "timer.fired"]
    # it starts only by its timer
    refused = await api.post("/instances", json={"definition_key": key})
    assert refused.status_code == 409 and "timer start event" in refused.json()["detail"]


async def test_a_date_and_a_duration_start_once(api: httpx.AsyncClient) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (await deploy_text(api, "timer_date.bpmn", _model("timer_date", soon, "timeDate"))).status_code == 201
    assert (await deploy_text(api, "timer_in.bpmn", _model("timer_in", "PT2S", "timeDuration"))).status_code == 201
    past = _model("timer_past", "2020-01-01T00:00:00Z", "timeDate")
    assert (await deploy_text(api, "timer_past.bpmn", past)).status_code == 201  # due already: fires now
    for key in ("timer_date", "timer_in", "timer_past"):
        assert len(await _instances(api, key, 1)) == 1


async def test_a_new_version_without_the_timer_removes_its_schedule(api: httpx.AsyncClient, client: Client) -> None:
    key = "timer_removed"
    assert (await deploy_text(api, f"{key}.bpmn", _model(key, "R/PT1H"))).status_code == 201
    handle = client.get_schedule_handle(schedule_id(key))
    assert (await handle.describe()).schedule.spec.intervals[0].every == timedelta(hours=1)
    plain = _model(key, "R/PT1H").replace(
        "<bpmn:timerEventDefinition><bpmn:timeCycle>R/PT1H</bpmn:timeCycle></bpmn:timerEventDefinition>", ""
    )
    assert (await deploy_text(api, f"{key}.bpmn", plain)).status_code == 201
    with pytest.raises(RPCError):
        await handle.describe()
    assert (await api.post("/instances", json={"definition_key": key})).status_code == 201


@pytest.mark.parametrize(
    ("timer", "element", "message"),
    [
        ("wait", "timeDuration", "needs an ISO 8601 literal"),
        ("P1Y2", "timeDuration", "invalid ISO 8601 timer value"),
        ("R2/PT0S", "timeCycle", "interval must be longer than zero"),
    ],
)
async def test_timer_starts_that_cannot_work_are_refused(
    api: httpx.AsyncClient, timer: str, element: str, message: str
) -> None:
    response = await deploy_text(api, "bad_timer.bpmn", _model("bad_timer_start", timer, element))
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["element_id"] == "every_night" and error["line"] == 7 and message in error["message"], error


async def test_a_schedule_that_fires_before_its_deploy_commits_retries_the_lookup(
    client: Client, session_factory: sessionmaker[Session]
) -> None:
    """A deploy creates its Schedules before it commits: a timer already due fires at once, and the
    start finds no definition yet. It is retried (the definition appears with the commit), and only
    after NOT_FOUND_ATTEMPTS counts as a definition that is gone."""
    starts = ScheduledStarts(client, session_factory, "engine")
    inp = ScheduledStart("not_committed_yet", "due", None, "timer-start.not_committed_yet-1")
    environment = ActivityEnvironment()
    for attempt, final in ((1, False), (NOT_FOUND_ATTEMPTS - 1, False), (NOT_FOUND_ATTEMPTS, True)):
        environment.info = dataclasses.replace(environment.info, attempt=attempt)
        with pytest.raises(ApplicationError, match="'not_committed_yet' not found") as raised:
            await environment.run(starts.start_scheduled, inp)
        assert raised.value.non_retryable is final, attempt
