"""`make screenshots`: a PNG of each page of the web console, for a reviewer to look at.

Starts the platform on a scratch data directory (`aimatrix run`, as a user would), deploys the demo
process, starts a few instances (one waiting in the inbox, one completed, one with an incident), and
walks the console in headless Chromium as the admin and as an approver.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from aimatrix.platform_process import PlatformProcess, headless_chrome, sign_in, start_platform

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

WIDTH, HEIGHT = 1400, 1000
MAX_HEIGHT = 2400
APPROVER = ("alice", ["approver"], ["purchasing"])
BAD_MODEL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">
  <bpmn:process id="broken" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="tidy_up" name="Tidy up">
      <bpmn:incoming>f1</bpmn:incoming>
      <bpmn:script>import os
os.remove("/etc/passwd")</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="tidy_up" />
  </bpmn:process>
</bpmn:definitions>
"""


class Seeded:
    """What the tour shows: instance ids by role in the story, and the approver's key."""

    def __init__(self, platform: PlatformProcess) -> None:
        platform.deploy()
        self.approver_key = platform.create_api_key(*APPROVER)
        start = platform.start_instance
        self.waiting = start("purchase_request", _request(1200, "Laptop for the new designer"), "PR-1001")
        start("purchase_request", _request(380, "27-inch monitor"), "PR-1002")
        self.completed = start("purchase_request", _request(95, "Office chair"), "PR-1003")
        finance = start("purchase_request", {**_request(5400, "Audit services"), "department": "finance"}, "PR-1004")
        # order_approval without its variables: its first script fails, an incident for the operator
        self.incident = start("order_approval", {}, "ORD-77")
        self._complete_as_approver(platform, self.completed)
        with platform.client() as http:
            self.finance_task: str = _eventually(
                lambda: http.get("/tasks", params={"instance_id": finance, "all": "true"}).json()[0]["id"]
            )

    def _complete_as_approver(self, platform: PlatformProcess, instance_id: str) -> None:
        with platform.client(self.approver_key) as http:
            task = _eventually(lambda: http.get("/tasks", params={"instance_id": instance_id}).json()[0])
            response = http.post(
                f"/tasks/{task['id']}/complete",
                json={"variables": {"decision": "approve", "approved_amount": 95, "comment": "Within budget"}},
            )
            response.raise_for_status()


def _request(amount: int, item: str) -> dict[str, object]:
    return {"amount": amount, "item": item, "department": "purchasing", "requester": "dave"}


T = TypeVar("T")


def _eventually(probe: Callable[[], T], timeout: float = 30) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return probe()
        except (IndexError, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


class Tour:
    def __init__(self, driver: WebDriver, platform: PlatformProcess, output: Path) -> None:
        from selenium.webdriver.support.wait import WebDriverWait

        self.driver = driver
        self.platform = platform
        self.output = output
        self.wait = WebDriverWait(driver, 30)

    def go(self, fragment: str) -> None:
        self.driver.get(f"{self.platform.console_url}{fragment}")

    def until_css(self, selector: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        self.wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, selector)))

    def shot(self, name: str) -> None:
        # The page's whole height (within reason), so what is below the fold is in the picture too; the
        # window is taller than the page by the browser's own frame.
        page, frame = self.driver.execute_script(
            "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]"
        )
        self.driver.set_window_size(WIDTH, max(HEIGHT, min(int(page) + int(frame), MAX_HEIGHT)))
        time.sleep(0.4)  # let the resize re-layout (and bpmn-js re-fit) before the picture, not an assertion
        path = self.output / f"{name}.png"
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(WIDTH, HEIGHT)
        print(f"[screenshots] {path}")


def tour(driver: WebDriver, platform: PlatformProcess, seeded: Seeded, output: Path, scratch: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select

    t = Tour(driver, platform, output)
    t.go("#/login")
    t.until_css("#login-key")
    t.shot("01-login")

    sign_in(driver, platform, platform.api_key)
    t.go("#/models")
    t.until_css("#definitions tr[data-key='purchase_request']")
    t.shot("02-models")

    bad = scratch / "broken_cleanup.bpmn"
    bad.write_text(BAD_MODEL)
    driver.find_element(By.ID, "upload-input").send_keys(str(bad))
    driver.find_element(By.ID, "upload-deploy").click()
    t.until_css("#upload-files .file-error")
    t.shot("03-upload-error")

    t.go("#/models/purchase_request")
    t.until_css("#diagram .djs-element[data-element-id='approve']")
    t.shot("04-model-diagram")
    driver.find_element(By.ID, "edit-model").click()
    t.until_css("#diagram .djs-palette")
    t.shot("05-model-editor")

    t.go("#/instances")
    t.until_css(f"#instances tr[data-instance-id='{seeded.completed}']")
    t.shot("06-instances")
    t.go(f"#/instances/{seeded.waiting}")
    t.until_css("#diagram .djs-element.amx-active")
    t.until_css("#audit-trail li")
    t.shot("07-instance-running")
    t.go(f"#/instances/{seeded.completed}")
    t.until_css("#instance-status .status-completed")
    t.until_css("#audit-trail li[data-action='element.completed'][data-element='approve']")
    t.shot("08-instance-completed")
    t.go(f"#/instances/{seeded.incident}")
    t.until_css("#diagram .djs-element.amx-incident")
    t.shot("09-instance-incident")
    t.go(f"#/inbox/{seeded.finance_task}?all=true")
    t.until_css("#task-assign")
    t.until_css(f"#task-list .task-item[data-task-id='{seeded.finance_task}'].selected")
    t.shot("10-inbox-operator")

    sign_in(driver, platform, seeded.approver_key)
    t.go("#/inbox")
    t.until_css(f"#task-list .task-item[data-instance-id='{seeded.waiting}']")
    t.shot("11-inbox")
    driver.find_element(By.CSS_SELECTOR, f"#task-list .task-item[data-instance-id='{seeded.waiting}']").click()
    t.until_css("#task-claim")
    driver.find_element(By.ID, "task-claim").click()
    t.until_css("#task-unclaim")
    t.until_css("#task-form select")
    driver.find_element(By.CSS_SELECTOR, "#task-complete").click()  # nothing chosen: the required field says so
    t.until_css("#task-form .field.has-error")
    t.shot("12-task-form-required")
    Select(driver.find_element(By.CSS_SELECTOR, "#task-form select")).select_by_visible_text("approve")
    driver.find_element(By.CSS_SELECTOR, "#task-form [data-field='approved_amount'] input").send_keys("1150")
    driver.find_element(By.CSS_SELECTOR, "#task-form textarea").send_keys("Approved: the 14-inch model is enough.")
    t.shot("13-task-form")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=Path("screenshots"), help="folder for the PNG files")
    args = parser.parse_args(argv)
    output: Path = args.output
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aimatrix-screenshots-") as scratch:
        platform = start_platform(Path(scratch) / "data")
        try:
            seeded = Seeded(platform)
            driver = headless_chrome(WIDTH, HEIGHT)
            try:
                tour(driver, platform, seeded, output.resolve(), Path(scratch))
            except Exception:
                driver.save_screenshot(str(output / "failed.png"))
                print(f"[screenshots] failed on {driver.current_url}; the page is in {output / 'failed.png'}")
                raise
            finally:
                driver.quit()
        finally:
            platform.stop()
    print(f"[screenshots] done: {output}/")


if __name__ == "__main__":
    main()
