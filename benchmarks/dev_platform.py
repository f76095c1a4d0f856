"""What the platform benchmarks run on: a Temporal dev server and a migrated SQLite platform store, in a
temporary directory that goes with them."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from benchmarks.bench_engine import DevServer
from store.db import make_engine, make_session_factory, migrate


@asynccontextmanager
async def dev_platform(*, memory: bool = False) -> AsyncIterator[tuple[Client, sessionmaker[Session]]]:
    """A client of a fresh dev server (`memory`: its state in memory, else SQLite with WAL), and the
    store's session factory."""
    with tempfile.TemporaryDirectory(prefix="aimatrix-bench-") as tmp:
        workdir = Path(tmp)
        server = DevServer(workdir, memory=memory)
        store = make_engine(f"sqlite:///{workdir / 'aimatrix.db'}")
        try:
            migrate(store)
            client = await server.start()
            yield client, make_session_factory(store)
        finally:
            server.stop()
            store.dispose()
