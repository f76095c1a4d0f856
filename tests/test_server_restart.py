"""The Temporal server itself crashes (SIGKILL) and restarts on its SQLite file: nothing is lost."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHandle

from activities.script_sandbox import ScriptSandbox
from aimatrix.binaries import dev_server_command, free_port, temporal_cli
from bpmn.definitions import start_input, validate_upload
from tests.conftest import replay_histories
from tests.helpers import DATA
from workers import sandbox as sandbox_worker
from workers.engine import build_worker
from workflows.contracts import (
    COMPLETE_TASK_UPDATE,
    PROCESS_WORKFLOW,
    STATE_QUERY,
    CompleteTaskInput,
    ProcessResult,
    ProcessState,
)


@contextmanager
def dev_server(db: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    cli = temporal_cli()
    assert cli is not None
    process = subprocess.Popen(
        dev_server_command(cli, port=port, db=db), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait()


async def _connect(port: int) -> Client:
    for _ in range(120):
        try:
            return await Client.connect(f"127.0.0.1:{port}")
        except RuntimeError:
            await asyncio.sleep(0.25)
    raise AssertionError("the dev server did not come up")


async def _open_task(handle: WorkflowHandle, element_id: str) -> str:
    for _ in range(200):
        state: ProcessState = await handle.query(STATE_QUERY, result_type=ProcessState)
        if [task.element_id for task in state.open_tasks] == [element_id]:
            return state.open_tasks[0].id
        await asyncio.sleep(0.05)
    raise AssertionError("no open task")


async def test_instances_survive_a_server_crash(tmp_path: Path, session_factory: sessionmaker[Session]) -> None:
    [definition] = validate_upload({"two.bpmn": (DATA / "two_step_approval.bpmn").read_bytes()})
    db, port, queue = tmp_path / "temporal.db", free_port(), f"engine-{uuid.uuid4().hex[:8]}"
    ids = [str(uuid.uuid4()) for _ in range(5)]
    seen: dict[str, str] = {}
    with dev_server(db, port) as server:
        client = await _connect(port)
        async with (
            build_worker(client, session_factory, task_queue=queue),
            sandbox_worker.build_worker(client, ScriptSandbox()),  # its script task
        ):
            for instance_id in ids:
                inp = start_input(
                    instance_id=instance_id, key=definition.key, version=1, digest=definition.hash,
                    files=definition.files, variables={"amount": 21},
                )  # fmt: skip
                handle = await client.start_workflow(PROCESS_WORKFLOW, inp, id=instance_id, task_queue=queue)
                first = await _open_task(handle, "first")
                await handle.execute_update(COMPLETE_TASK_UPDATE, CompleteTaskInput(first, {"one": 1}, "alice"))
                seen[instance_id] = await _open_task(handle, "second")
        server.kill()  # no shutdown, no flush: a crash
        server.wait()

    with dev_server(db, port):
        client = await _connect(port)
        async with (
            build_worker(client, session_factory, task_queue=queue),
            sandbox_worker.build_worker(client, ScriptSandbox()),  # its script task
        ):
            for instance_id in ids:
                handle = client.get_workflow_handle(instance_id, result_type=ProcessResult)
                assert await _open_task(handle, "second") == seen[instance_id]  # the same task, the same id
                await handle.execute_update(
                    COMPLETE_TASK_UPDATE, CompleteTaskInput(seen[instance_id], {"two": 2}, "bob")
                )
                result: ProcessResult = await asyncio.wait_for(handle.result(), timeout=30)
                assert result.variables == {"amount": 21, "requested": 42, "one": 1, "two": 2}
                assert result.completed == ["start", "prepare", "first", "second", "end"]
            await replay_histories([await client.get_workflow_handle(i).fetch_history() for i in ids])
