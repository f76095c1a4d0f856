"""`aimatrix run` starts one process per pool as `python -m workers.<pool>`: each must be runnable,
and `aimatrix worker <pool>` must know each one."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from aimatrix.launcher import POOLS


@pytest.mark.parametrize("pool", POOLS)
def test_every_pool_the_launcher_starts_is_a_runnable_module(pool: str) -> None:
    name = f"workers.{pool}"
    spec = importlib.util.find_spec(name)
    assert spec is not None, name
    if spec.submodule_search_locations is not None:  # a package runs through its __main__
        assert importlib.util.find_spec(f"{name}.__main__") is not None, f"{name} has no __main__"


def test_the_cli_offers_every_pool() -> None:
    usage = subprocess.run(
        [sys.executable, "-m", "aimatrix.cli", "worker", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for pool in POOLS:
        assert pool in usage, (pool, usage)
