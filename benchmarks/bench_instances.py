"""GET /instances at scale: the same queries over 1,000 and 100,000 instances, side by side.

Run as `python -m benchmarks.bench_instances` (`--rows`, `--small`, `--postgres URL`, `--no-write`).
It fills a fresh database (SQLite in a temp dir; PostgreSQL in a throw-away schema with
`--postgres`) through the real migrations with synthetic instance rows, then times the data-access
call behind GET /instances (`store.instances.list_page`) for typical filters, including a page
deep in a cursor walk. Keyset pagination over indexed columns should make each query cost about
the same at both sizes: the report gives the ratio large/small per query.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, text
from sqlalchemy.orm import Session, sessionmaker

from benchmarks.report import write_block
from store.db import make_engine, make_session_factory, migrate
from store.instances import InstanceFilter, list_page
from store.models import Instance

REPEATS = 30


def fill(factory: sessionmaker[Session], rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    keys = [f"process_{i}" for i in range(20)]
    statuses = ["completed"] * 80 + ["running"] * 15 + ["failed"] * 3 + ["cancelled"] * 2
    batch: list[dict[str, object]] = []
    with factory.begin() as session:
        for n in range(rows):
            started = start + timedelta(seconds=n * 30 + rng.random())
            status = rng.choice(statuses)
            batch.append(
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "definition_key": rng.choice(keys),
                    "version": rng.randint(1, 5),
                    "business_key": f"order-{n}",
                    "started_at": started,
                    "started_by": "bench",
                    "status": status,
                    "closed_at": None if status == "running" else started + timedelta(minutes=5),
                }
            )
            if len(batch) == 5000:
                session.execute(insert(Instance), batch)
                batch.clear()
        if batch:
            session.execute(insert(Instance), batch)


def queries(rows: int) -> dict[str, Callable[[Session], object]]:
    middle = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rows * 15)

    def deep_page(session: Session) -> object:
        cursor = None
        for _ in range(20):  # the 20th page of 50
            _, cursor = list_page(session, where=InstanceFilter(), limit=50, cursor=cursor)
        return cursor

    return {
        "first page, no filter": lambda s: list_page(s, where=InstanceFilter(), limit=50),
        "status=running": lambda s: list_page(s, where=InstanceFilter(status="running"), limit=50),
        "definition_key + version": lambda s: list_page(
            s, where=InstanceFilter(definition_key="process_3", version=2), limit=50
        ),
        "business_key": lambda s: list_page(s, where=InstanceFilter(business_key=f"order-{rows // 2}"), limit=50),
        "started_before (middle)": lambda s: list_page(s, where=InstanceFilter(started_before=middle), limit=50),
        "20 pages by cursor": deep_page,
    }


def measure(factory: sessionmaker[Session], rows: int) -> dict[str, float]:
    results: dict[str, float] = {}
    for name, run in queries(rows).items():
        timings = []
        with factory() as session:
            run(session)  # warm the cache
            for _ in range(REPEATS):
                began = time.perf_counter()
                run(session)
                timings.append((time.perf_counter() - began) * 1000)
        results[name] = statistics.median(timings)
    return results


def database(
    kind: str, postgres: str | None, tmp: Path, label: str
) -> tuple[sessionmaker[Session], Callable[[], None]]:
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{tmp / f'{label}.db'}")
        migrate(engine)
        return make_session_factory(engine), engine.dispose
    assert postgres
    schema = f"bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(postgres, connect_args={"options": f"-csearch_path={schema}"})
    migrate(engine)

    def drop() -> None:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return make_session_factory(engine), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--postgres", help="also run on this PostgreSQL URL (a schema is created and dropped)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    kinds = ["sqlite", *(["postgresql"] if args.postgres else [])]
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        for kind in kinds:
            sizes: dict[int, dict[str, float]] = {}
            for rows in (args.small, args.rows):
                factory, close = database(kind, args.postgres, Path(tmp_dir), f"{kind}_{rows}")
                try:
                    began = time.perf_counter()
                    fill(factory, rows)
                    print(f"{kind}: {rows} rows inserted in {time.perf_counter() - began:.1f} s")
                    sizes[rows] = measure(factory, rows)
                finally:
                    close()
            lines += [
                f"#### {kind}",
                "",
                f"| query (median of {REPEATS}, ms) | {args.small:,} rows | {args.rows:,} rows | ratio |",
                "|---|---:|---:|---:|",
            ]
            for name in sizes[args.small]:
                small, large = sizes[args.small][name], sizes[args.rows][name]
                lines.append(f"| {name} | {small:.2f} | {large:.2f} | {large / small:.2f} |")
                print(f"{kind:10} {name:28} {small:8.2f} ms {large:8.2f} ms  x{large / small:.2f}")
            lines.append("")
    command = "python -m benchmarks.bench_instances" + (" --postgres URL" if args.postgres else "")
    block = "\n".join(
        [
            "## GET /instances at 100,000 instances",
            "",
            f"`{command}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. The data-access call behind GET /instances "
            "over synthetic rows (20 definitions, 80 % completed); keyset pagination on indexed columns, so "
            "a ratio near 1 means the cost does not grow with the table.",
            "",
            *lines,
        ]
    )
    if args.no_write:
        return
    path = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
    write_block(path, "bench_instances", block, script="benchmarks.bench_instances")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
