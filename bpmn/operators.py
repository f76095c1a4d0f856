"""Operator registry: `<pool>.<operation>` → task queue and activity options.

A service task names an operator; its prefix picks the worker pool (each pool is its own process
listening on its own task queue) and the pool's defaults give timeouts and retries. The registry
is static configuration, read by the workflow, so every worker must run with the same one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

from workflows.contracts import (
    CONNECTOR_TASK_QUEUE,
    EDGE_OPERATIONS,
    EDGE_TASK_QUEUE_PREFIX,
    ENGINE_TASK_QUEUE,
    GPU_OPERATIONS,
    GPU_TASK_QUEUE,
    SANDBOX_TASK_QUEUE,
    TWIN_TASK_QUEUE,
    OperatorRoute,
)

OPERATOR_PATTERN = re.compile(r"^(?P<pool>[a-z][a-z0-9_-]*)\.(?P<operation>[a-z][a-z0-9_.-]*)$")


@dataclass(frozen=True)
class PoolConfig:
    task_queue: str
    start_to_close: timedelta = timedelta(minutes=5)
    schedule_to_close: timedelta | None = None
    heartbeat: timedelta | None = None
    max_attempts: int = 3
    initial_interval: timedelta = timedelta(seconds=1)
    backoff: float = 2.0
    operations: frozenset[str] | None = None  # None: the pool accepts any operation name
    # a pool with a queue per site: the task names its site in this parameter (`task_queue.<site>`)
    site_param: str | None = None
    schedule_to_start: timedelta | None = None
    fallback_pool: str | None = None  # runs the same operation when no worker of the site starts it


@dataclass(frozen=True)
class ResolvedOperator:
    name: str
    pool: str
    operation: str
    config: PoolConfig
    fallback: PoolConfig | None = None

    def route(self) -> OperatorRoute:
        c = self.config
        return OperatorRoute(
            task_queue=c.task_queue,
            start_to_close_seconds=c.start_to_close.total_seconds(),
            schedule_to_close_seconds=c.schedule_to_close.total_seconds() if c.schedule_to_close else None,
            heartbeat_seconds=c.heartbeat.total_seconds() if c.heartbeat else None,
            max_attempts=c.max_attempts,
            initial_interval_seconds=c.initial_interval.total_seconds(),
            backoff=c.backoff,
            site_param=c.site_param,
            schedule_to_start_seconds=c.schedule_to_start.total_seconds() if c.schedule_to_start else None,
            fallback_operator=f"{c.fallback_pool}.{self.operation}" if self.fallback else None,
            fallback_task_queue=self.fallback.task_queue if self.fallback else None,
        )


@dataclass
class OperatorRegistry:
    pools: dict[str, PoolConfig] = field(default_factory=dict)

    def register(self, prefix: str, config: PoolConfig) -> None:
        fallback = self.pools.get(config.fallback_pool) if config.fallback_pool else None
        if config.fallback_pool and (
            fallback is None
            or (fallback.operations is not None and not (config.operations or set()) <= fallback.operations)
        ):
            raise ValueError(
                f"pool '{prefix}': its fallback pool '{config.fallback_pool}' must be registered first "
                "and offer the same operations"
            )
        self.pools[prefix] = config

    def resolve(self, operator: str) -> ResolvedOperator:
        """Raise UnknownOperatorError with a message a modeller can act on."""
        # fullmatch: with match, "$" also matched before a trailing newline, so "http.request\n" resolved
        match = OPERATOR_PATTERN.fullmatch(operator or "")
        if match is None:
            raise UnknownOperatorError(
                f"operator '{operator}' must have the form <pool>.<operation>, e.g. http.request"
            )
        pool, operation = match["pool"], match["operation"]
        config = self.pools.get(pool)
        if config is None:
            known = ", ".join(sorted(self.pools)) or "none"
            raise UnknownOperatorError(f"operator '{operator}': no worker pool '{pool}' (known: {known})")
        if config.operations is not None and operation not in config.operations:
            known = ", ".join(sorted(f"{pool}.{op}" for op in config.operations))
            raise UnknownOperatorError(f"operator '{operator}' is not offered by pool '{pool}' ({known})")
        fallback = self.pools[config.fallback_pool] if config.fallback_pool else None
        return ResolvedOperator(operator, pool, operation, config, fallback)

    def routes(self, operators: set[str]) -> dict[str, OperatorRoute]:
        """Routes for every operator a process uses, to carry in its ProcessInput."""
        return {name: self.resolve(name).route() for name in sorted(operators)}


class UnknownOperatorError(ValueError):
    pass


registry = OperatorRegistry()
registry.register(
    "http",
    PoolConfig(
        task_queue=CONNECTOR_TASK_QUEUE,
        start_to_close=timedelta(seconds=60),
        operations=frozenset({"request"}),
    ),
)
registry.register(
    "gpu",
    PoolConfig(
        task_queue=GPU_TASK_QUEUE,
        # a request waits for its pass behind others, and a big one runs many passes; a worker that dies
        # mid-request is noticed by its missing heartbeats, not after the whole timeout, and a cancelled
        # request (interrupting boundary event) learns it at its next heartbeat: within ~8 s
        start_to_close=timedelta(minutes=10),
        heartbeat=timedelta(seconds=10),
        operations=GPU_OPERATIONS,
    ),
)
# Script tasks. The child process has its own wall-clock limit (5 s by default); this one only
# bounds a worker that died mid-script (its scripts are run again elsewhere once it expires, so it
# is kept short: the child's limit plus its start), and retries are for that case: a script's own
# failure is non-retryable.
registry.register(
    "sandbox",
    PoolConfig(
        task_queue=SANDBOX_TASK_QUEUE,
        start_to_close=timedelta(seconds=15),
        initial_interval=timedelta(milliseconds=200),
        operations=frozenset({"script"}),
    ),
)
# Edge sites: `edge.<operation>` with a `site` parameter runs on the int8 model of that site's workers
# (queue `edge.<site>`). Edge first: when none of them starts the task within a schedule-to-start
# timeout (the site is down, or has no worker yet), the gpu pool runs the same operation instead; a
# model sets `aimatrix.fallback=off` where data must not leave the site.
registry.register(
    "edge",
    PoolConfig(
        task_queue=EDGE_TASK_QUEUE_PREFIX,
        start_to_close=timedelta(minutes=10),
        heartbeat=timedelta(seconds=10),
        operations=EDGE_OPERATIONS,
        site_param="site",
        schedule_to_start=timedelta(seconds=30),
        fallback_pool="gpu",
    ),
)
# The digital twin: a simulation runs for seconds to minutes and reports its progress in heartbeats;
# a worker that dies mid-run is noticed by their absence, a cancellation (an interrupting boundary
# event) reaches it with the next one (the SDK sends them every 0.8 x the timeout), and a bad request
# fails at once.
registry.register(
    "twin",
    PoolConfig(
        task_queue=TWIN_TASK_QUEUE,
        start_to_close=timedelta(hours=1),
        heartbeat=timedelta(seconds=5),
        max_attempts=2,
        operations=frozenset({"simulate"}),
    ),
)
# Send tasks and message throw and end events (bpmn/specs.py MessagePublishTask) publish through the
# engine pool, which reads the subscription projection and updates the receiving instances. A message
# that reaches nobody yet (the receiver is not waiting yet) is retried for about two minutes (1 s
# doubling, 8 attempts) before it becomes an incident an operator can retry; `aimatrix.retries`
# changes that per element.
registry.register(
    "message",
    PoolConfig(
        task_queue=ENGINE_TASK_QUEUE,
        start_to_close=timedelta(seconds=60),
        max_attempts=8,
        operations=frozenset({"publish"}),
    ),
)
