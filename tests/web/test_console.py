"""The web console end to end, in headless Chromium against the running platform: deploy a model,
see its diagram, start an instance, complete its task through the inbox form as an approver, and see
the instance finish with its audit trail. What each role may not do is hidden from it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from aimatrix.platform_process import DEMO_FILES, PlatformProcess, sign_in

# The demo model's shapes, as bpmn-js draws them (one SVG group per element, named by its id).
DEMO_ELEMENTS = ("start", "approve", "approved", "place_order", "ordered", "rejected")
WAIT = 20


class Console:
    """The few moves the tests make on the console, each waiting for what it needs."""

    def __init__(self, driver: WebDriver, platform: PlatformProcess) -> None:
        self.driver = driver
        self.platform = platform
        self.wait = WebDriverWait(driver, WAIT)

    def sign_in(self, key: str) -> None:
        sign_in(self.driver, self.platform, key)

    def go(self, fragment: str) -> None:
        self.driver.get(f"{self.platform.console_url}{fragment}")

    def visible(self, css: str) -> WebElement:
        element: WebElement = self.wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))
        return element

    def click(self, css: str) -> None:
        self.wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, css))).click()

    def absent(self, css: str) -> bool:
        return not self.driver.find_elements(By.CSS_SELECTOR, css)

    def type_into(self, css: str, text: str) -> None:
        field = self.visible(css)
        field.clear()
        field.send_keys(text)


@pytest.fixture
def console(browser: WebDriver, platform: PlatformProcess) -> Iterator[Console]:
    browser.get_log("browser")  # what earlier tests left
    yield Console(browser, platform)
    # Refused calls (401, 403, 422) are logged by Chromium as failed loads: they are part of the
    # scenarios. Anything else severe is a script error of the console.
    errors = [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]
    ]
    assert not errors, errors


def approver_key(platform: PlatformProcess, groups: list[str]) -> tuple[str, str]:
    name = f"approver-{uuid.uuid4().hex[:8]}"
    return name, platform.create_api_key(name, ["approver"], groups)


def test_model_to_finished_instance(console: Console, platform: PlatformProcess) -> None:
    console.sign_in(platform.api_key)

    # Upload the model with its form files through the file picker, as one deployment.
    console.go("#/models")
    console.visible("#upload-drop")
    console.driver.find_element(By.ID, "upload-input").send_keys("\n".join(str(path) for path in DEMO_FILES))
    console.visible("#upload-files li[data-file='purchase_request.bpmn']")
    console.click("#upload-deploy")
    console.visible("#upload-result .notice-success")
    console.click("#definitions tr[data-key='purchase_request'] a")

    # Its diagram, drawn by bpmn-js: an SVG with one shape per element.
    console.visible("#diagram svg")
    for element_id in DEMO_ELEMENTS:
        console.visible(f"#diagram svg .djs-shape[data-element-id='{element_id}']")

    # Start an instance from the model page.
    console.click("#start-instance")
    console.type_into("#start-business-key", "PR-E2E")
    variables = {"amount": 640, "item": "Standing desk", "department": "purchasing"}
    console.type_into("#start-variables", json.dumps(variables))
    console.click("#start-submit")
    console.wait.until(ec.url_contains("#/instances/"))
    instance_id = console.driver.current_url.rsplit("/", 1)[1]
    console.visible("#diagram .djs-shape.amx-active[data-element-id='approve']")
    console.visible("#diagram .djs-shape.amx-completed[data-element-id='start']")

    # An approver of the department's group works the task in the inbox.
    name, key = approver_key(platform, ["purchasing"])
    console.sign_in(key)
    console.go("#/inbox")
    console.click(f"#task-list .task-item[data-instance-id='{instance_id}']")
    console.click("#task-claim")
    console.visible("#task-unclaim")
    assert name in console.visible("#task-detail .facts").text
    console.visible("#task-form select")
    console.click("#task-complete")  # nothing chosen yet: the required decision says so, nothing is sent
    assert console.visible("#task-form .field[data-field='decision'] .field-error").text
    decision = Select(console.visible("#task-form .field[data-field='decision'] select"))
    decision.select_by_visible_text("reject")
    # A rejection needs a comment: a rule of the form's schema (if/then) that only the server checks.
    # Its 422 names the field, and the console puts the message under it.
    console.click("#task-complete")
    assert "required" in console.visible("#task-form .field[data-field='comment'] .field-error").text
    decision.select_by_visible_text("approve")
    console.type_into("#task-form .field[data-field='approved_amount'] input", "600")
    console.type_into("#task-form .field[data-field='comment'] textarea", "Approved from the browser test")
    console.click("#task-complete")
    console.visible("#task-completed")
    console.wait.until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, f"#task-list .task-item[data-instance-id='{instance_id}']")
    )

    # The admin sees the instance finish, with what the approver decided and the audit trail.
    console.sign_in(platform.api_key)
    console.go(f"#/instances/{instance_id}")
    console.visible("#instance-status .status-completed")
    console.visible("#diagram .djs-shape.amx-completed[data-element-id='ordered']")
    assert console.absent("#diagram .djs-shape.amx-active")
    assert console.visible("#variables tr[data-variable='decision'] td").text == "approve"
    assert console.visible("#variables tr[data-variable='order_number'] td").text == "PO-640"
    completed_task = console.visible("#audit-trail li[data-action='element.completed'][data-element='approve']")
    assert f"by {name}" in completed_task.text
    console.visible("#audit-trail li[data-action='element.completed'][data-element='ordered']")

    # ... and finds it in the list filtered to completed purchase requests.
    console.go("#/instances")
    Select(console.visible("#filter-status")).select_by_value("completed")
    console.wait.until(ec.url_contains("status=completed"))
    console.visible(f"#instances tr[data-instance-id='{instance_id}']")
    console.wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#filter-definition [value='order_approval']")))
    Select(console.visible("#filter-definition")).select_by_value("order_approval")
    console.wait.until(ec.url_contains("definition_key=order_approval"))
    console.wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, f"tr[data-instance-id='{instance_id}']"))


def test_invalid_model_shows_its_errors_next_to_the_file(
    console: Console, platform: PlatformProcess, tmp_path: Path
) -> None:
    broken = tmp_path / "broken_cleanup.bpmn"
    broken.write_text(
        """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">
  <bpmn:process id="broken_cleanup" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="tidy_up">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:script>import os</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="tidy_up" />
  </bpmn:process>
</bpmn:definitions>
"""
    )
    console.sign_in(platform.api_key)
    console.go("#/models")
    console.visible("#upload-drop")
    console.driver.find_element(By.ID, "upload-input").send_keys(str(broken))
    console.click("#upload-deploy")
    error = console.visible("#upload-files li[data-file='broken_cleanup.bpmn'] .file-error")
    assert "tidy_up" in error.text
    assert "line 5" in error.text
    assert "import" in error.text.lower()
    console.visible("#upload-result .notice-error")
    assert console.absent("#definitions tr[data-key='broken_cleanup']")


def test_an_approver_sees_neither_modeler_tools_nor_other_groups_tasks(
    console: Console, platform: PlatformProcess
) -> None:
    platform.deploy()
    mine = platform.start_instance("purchase_request", {"amount": 80, "department": "purchasing"})
    theirs = platform.start_instance("purchase_request", {"amount": 90, "department": "finance"})
    _, key = approver_key(platform, ["purchasing"])
    console.sign_in(key)
    assert "approver" in console.visible("#user-roles").text

    console.go("#/models")
    console.visible("#definitions tr[data-key='purchase_request']")
    assert console.absent("#upload")
    console.go("#/models/purchase_request")
    console.visible("#diagram svg .djs-shape[data-element-id='approve']")
    assert console.absent("#edit-model")
    assert console.absent("#start-instance")

    console.go("#/inbox")
    console.visible(f"#task-list .task-item[data-instance-id='{mine}']")
    assert console.absent(f"#task-list .task-item[data-instance-id='{theirs}']")
    assert console.absent("#inbox-all")  # everyone's tasks are for operators


def test_a_modeler_edits_a_model_in_the_browser_and_deploys_a_new_version(
    console: Console, platform: PlatformProcess
) -> None:
    with platform.client() as http:
        before = len(http.get("/definitions/purchase_request").json()["versions"])
    console.sign_in(platform.api_key)
    console.go("#/models/purchase_request")
    console.click("#edit-model")
    console.visible("#diagram .djs-palette")  # the modeler's tools, which the viewer does not have
    console.visible("#diagram svg .djs-shape[data-element-id='approve']")
    console.click("#deploy-edited")
    # bpmn-js writes the XML its own way, so the same diagram is new content: the next version
    console.wait.until(ec.url_contains(f"?version={before + 1}"))
    console.visible("#diagram svg .djs-shape[data-element-id='approve']")
    assert console.absent("#diagram .djs-palette")
    with platform.client() as http:
        assert len(http.get("/definitions/purchase_request").json()["versions"]) == before + 1
        # its forms went with it: the console re-sent the version's other files
        files = http.get(f"/definitions/purchase_request/versions/{before + 1}/files").json()
        assert files == ["purchase_request.bpmn", "purchase_request_form.json", "purchase_request_ui.json"]


def test_a_refused_key_leads_back_to_the_login_page(console: Console, platform: PlatformProcess) -> None:
    console.go("#/login")
    console.type_into("#login-key", "amx_not_a_key")
    console.click("#login-submit")
    assert "refused" in console.visible("#login-error").text

    # A key revoked (or mistyped) after signing in: the next call's 401 signs the user out.
    console.sign_in(platform.api_key)
    console.driver.execute_script("sessionStorage.setItem('aimatrix.token', 'amx_revoked_meanwhile')")
    console.go("#/instances")
    console.visible("#login-key")
    assert "next=" in console.driver.current_url


def test_a_called_instance_and_its_caller_link_to_each_other(console: Console, platform: PlatformProcess) -> None:
    data = Path(__file__).parent.parent / "data"
    platform.deploy([data / "called_review.bpmn"])
    platform.deploy([data / "calling_order.bpmn"])
    with platform.client() as http:
        started = http.post("/instances", json={
            "definition_key": "calling_order", "variables": {"amount": 2, "escalate": False, "patience": "PT1H"},
        })  # fmt: skip
        assert started.status_code == 201, started.text
        caller = started.json()["id"]
    console.sign_in(platform.api_key)
    console.go(f"#/instances/{caller}")
    link = console.visible("#called-instances li a")
    assert "called_review" in console.visible("#called-instances li").text
    link.click()
    console.wait.until(lambda d: caller not in d.current_url)
    # (the test models carry no diagram: the pages' lists say where each instance is)
    console.wait.until(lambda d: "Review the order" in d.find_element(By.ID, "instance-tasks").text)
    assert "call_review" in console.visible("#instance-parent").text
    console.click("#instance-parent a")
    console.wait.until(lambda d: d.current_url.endswith(caller))
    console.visible("#called-instances li a")
