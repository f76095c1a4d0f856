"""The platform started as a user starts it (`aimatrix run` in a process of its own), on free ports and
a scratch data directory, and the headless Chromium that drives its web console.

Used by the browser tests (tests/web) and `make screenshots`, so both see what a user would: the real
launcher, real workers, the real API serving the console.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from aimatrix.binaries import find, free_port
from store import api_keys

if TYPE_CHECKING:  # selenium is a test dependency, imported only when a browser is wanted
    from selenium.webdriver.chrome.webdriver import WebDriver

REPO = Path(__file__).resolve().parent.parent
# The console's demo process (one of the examples `aimatrix run` deploys): a user task for the
# department's group, with a JSON Schema form.
DEMO_FILES = tuple(
    REPO / "examples" / name
    for name in ("purchase_request.bpmn", "purchase_request_form.json", "purchase_request_ui.json")
)
# Enough to run user tasks, gateways, scripts and HTTP calls; the gpu, edge and twin pools would load
# models and simulators that the console's pages do not need.
CONSOLE_POOLS = ("engine", "connector", "sandbox")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking")
READY_LINE = "[aimatrix] running"


class PlatformFailed(RuntimeError):
    """`aimatrix run` exited or did not get ready; the message ends with its log."""


@dataclass
class PlatformProcess:
    base_url: str
    api_key: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def console_url(self) -> str:
        return f"{self.base_url}/console/"

    def client(self, key: str | None = None) -> httpx.Client:
        """An HTTP client for /api/v1 with `key` (the admin key by default)."""
        return httpx.Client(
            base_url=f"{self.base_url}/api/v1",
            headers={"Authorization": f"Bearer {key or self.api_key}"},
            timeout=30,
        )

    def create_api_key(self, name: str, roles: Sequence[str], groups: Sequence[str] = ()) -> str:
        with self.client() as http:
            response = http.post("/api-keys", json={"name": name, "roles": list(roles), "groups": list(groups)})
        response.raise_for_status()
        key: str = response.json()["key"]
        return key

    def deploy(self, paths: Sequence[Path] = DEMO_FILES) -> list[dict[str, object]]:
        """Deploy files together (a model and the forms it names); the definitions deployed."""
        files = [("files", (path.name, path.read_bytes(), "application/octet-stream")) for path in paths]
        with self.client() as http:
            response = http.post("/deployments", files=files)
        response.raise_for_status()
        definitions: list[dict[str, object]] = response.json()["definitions"]
        return definitions

    def start_instance(self, key: str, variables: dict[str, object], business_key: str | None = None) -> str:
        with self.client() as http:
            response = http.post(
                "/instances", json={"definition_key": key, "variables": variables, "business_key": business_key}
            )
        response.raise_for_status()
        instance_id: str = response.json()["id"]
        return instance_id

    def stop(self, timeout: float = 30) -> None:
        """Ctrl-C, as a user stops it: the launcher stops its children and exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # Its children are in its process group: none may outlive a launcher that hung.
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _temporal_port() -> int:
    # The launcher puts the Temporal Web UI on the gRPC port + 1000: both must be free.
    for _ in range(50):
        port = free_port()
        if port + 1000 < 65536:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port + 1000))
                except OSError:
                    continue
            return port
    raise PlatformFailed("no free port pair for the Temporal server and its UI")


def start_platform(
    data_dir: Path,
    *,
    database_url: str | None = None,
    pools: Sequence[str] = CONSOLE_POOLS,
    api_key: str | None = None,
    timeout: float = 180,
) -> PlatformProcess:
    """Start `aimatrix run` and return once it has deployed the examples and says it is running."""
    data_dir.mkdir(parents=True, exist_ok=True)
    key = api_key or api_keys.generate()
    port = free_port()
    env = {
        **os.environ,
        "AIMATRIX_DATA_DIR": str(data_dir.resolve()),
        "AIMATRIX_API_HOST": "127.0.0.1",
        "AIMATRIX_API_PORT": str(port),
        "AIMATRIX_API_KEY": key,
        "AIMATRIX_POOLS": ",".join(pools),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{_temporal_port()}",
        # Its progress lines go to a file: unbuffered, or the ready line would wait for the buffer to fill.
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    launcher = find("aimatrix")  # the console script the venv installs; the module where it is not installed
    command = [launcher, "run"] if launcher else [sys.executable, "-m", "aimatrix.cli", "run"]
    log = data_dir / "launcher.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    platform = PlatformProcess(f"http://127.0.0.1:{port}", key, data_dir, process, log)
    deadline = time.monotonic() + timeout
    while READY_LINE not in log.read_text(errors="replace"):
        if process.poll() is not None:
            raise PlatformFailed(f"aimatrix run exited with {process.returncode}:\n{platform.log_tail()}")
        if time.monotonic() > deadline:
            platform.stop()
            raise PlatformFailed(f"aimatrix run was not ready after {timeout:g} s:\n{platform.log_tail()}")
        time.sleep(0.3)
    return platform


def headless_chrome(width: int = 1400, height: int = 1000) -> WebDriver:
    """Debian's Chromium through its own chromedriver (Selenium never downloads a browser here)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    # The page's console, for tests to check that no script error happened (driver.get_log("browser")).
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_window_size(width, height)
    return driver


def sign_in(driver: WebDriver, platform: PlatformProcess, key: str, timeout: float = 20) -> None:
    """Through the console's login form, as a user pastes a key; returns once the top bar shows who."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.wait import WebDriverWait

    driver.get(f"{platform.console_url}#/login")
    wait = WebDriverWait(driver, timeout)
    field = wait.until(ec.element_to_be_clickable((By.ID, "login-key")))
    field.clear()
    field.send_keys(key)
    driver.find_element(By.ID, "login-submit").click()
    wait.until(ec.visibility_of_element_located((By.ID, "user-subject")))
