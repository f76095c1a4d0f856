"""One replication of a process model on salabim.

salabim spends most of its time per event in its own scheduling, and creating a `Component` is
expensive (FINDINGS: one component per customer ran at ≈0.005x a hand-written event loop, a few
long-lived ones at ≈0.23x). So the instances and their tokens here are plain objects, and only a
handful of components live for the whole run:

- `_Arrivals` starts instances, one hold per arrival;
- one `_Server` per unit of a finite resource takes work from that resource's FIFO queue;
- `_Delays` runs every wait that needs no resource (timers, unlimited pools) off its own heap;
- `_Clock` takes the warm-up and horizon snapshots and reports progress.

An idle server is handed its job and woken *at the job's end* (`activate(delay=duration)`), rather
than woken now to start it: that saves one salabim event per job that found a server free.

Tokens move through instantaneous nodes (gateways, start and end events, untimed tasks) in plain
Python inside `_Replication.enter`, between events. A token runs in a `_Frame`: the instance, or an
embedded subprocess, which counts its live tokens so that it ends when the last one does.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import numpy as np
import salabim as sim  # type: ignore[import-untyped]

from workers.twin.model import NodeKind, ProcessModel
from workers.twin.params import Resolved

# node codes, for the hot path
_START, _END, _TIMED, _XOR, _OR, _AND, _SUB, _BOUNDARY = range(8)
_CODES = {
    NodeKind.START: _START,
    NodeKind.END: _END,
    NodeKind.TASK: _TIMED,
    NodeKind.EVENT: _TIMED,
    NodeKind.EXCLUSIVE: _XOR,
    NodeKind.INCLUSIVE: _OR,
    NodeKind.PARALLEL: _AND,
    NodeKind.SUBPROCESS: _SUB,
    NodeKind.BOUNDARY: _BOUNDARY,
}
# Instantaneous steps one token may take between two events: more is a loop that takes no time.
_MAX_INSTANT_STEPS = 100_000


class SimulationCancelled(Exception):
    """The `cancelled` callable said stop."""


class ZeroTimeLoopError(RuntimeError):
    """A token went round a loop in which nothing takes time: the simulated clock would never move."""


class _Frame:
    """An instance, or one run of a subprocess inside one."""

    __slots__ = ("active", "call", "counted", "expected", "joins", "parent", "started")

    def __init__(self, parent: _Frame | None, call: int, started: float, counted: bool) -> None:
        self.parent = parent
        self.call = call  # the subprocess node it returns to; -1 for the instance
        self.active = 1  # tokens alive in it
        self.joins: dict[int, int] | None = None  # join node → tokens arrived
        self.expected: dict[int, int] | None = None  # inclusive join → tokens its split sent
        self.started = started
        self.counted = counted  # started after the warm-up: its figures count


@dataclass
class ReplicationOutcome:
    cycle_times: np.ndarray[Any, np.dtype[np.float64]]  # instances that started after the warm-up
    started: int  # after the warm-up
    unfinished: int  # of those, still running when the run stopped
    completed_in_window: int  # completions between the warm-up and the horizon, whenever started
    window_s: float
    utilisation: dict[str, float]  # resource → busy fraction of its capacity over the window
    queue_length: dict[str, float]  # resource → time-average number waiting over the window
    visits: dict[str, int]  # element → times a counted instance passed it
    wait_s: dict[str, float]  # element → total time waiting for its resource
    service_s: dict[str, float]  # element → total time it took
    events: int  # arrivals plus ends of timed work: what a hand-written event loop would schedule
    end_time: float = 0.0
    notes: list[str] = field(default_factory=list)


class _Station:
    """A finite resource: its FIFO queue, its idle servers, and what it did within the window.

    Busy time and queue length are integrated per job rather than per change of state: when a job
    starts, its wait [queued, start] and its work [start, end] are both known, and their overlaps
    with the window (warm-up to horizon) are what time-weighted averages need. That is one sum per
    job instead of a clock update at every arrival and departure.
    """

    __slots__ = ("busy_s", "capacity", "idle", "jobs", "name", "queue", "waiting_s", "window")

    def __init__(self, name: str, capacity: int, window: tuple[float, float]) -> None:
        self.name = name
        self.capacity = capacity
        self.queue: deque[tuple[_Frame, int, float]] = deque()
        self.idle: list[_Server] = []
        self.window = window
        self.busy_s = 0.0  # server-seconds of work inside the window
        self.waiting_s = 0.0  # job-seconds of waiting inside the window
        self.jobs = 0

    def account(self, queued: float, start: float, end: float) -> None:
        self.jobs += 1
        low, high = self.window
        if low <= queued and end <= high:
            self.busy_s += end - start
            self.waiting_s += start - queued
            return
        self.busy_s += max(0.0, min(end, high) - max(start, low))
        self.waiting_s += max(0.0, min(start, high) - max(queued, low))


class _Server(sim.Component):
    def setup(self, replication: _Replication, station: _Station) -> None:
        self.replication = replication
        self.station = station
        self.job: tuple[_Frame, int] | None = None
        _quiet(self)

    def process(self) -> Any:
        station = self.station
        queue = station.queue
        replication = self.replication
        samplers = replication.samplers
        env = self.env
        station.idle.append(self)
        yield self.passivate()  # woken at the end of the first job handed to it
        finish = replication.finish
        while True:
            frame, node = self.job  # type: ignore[misc]
            finish[node](frame, node)
            if queue:
                now = env._now
                frame, node, queued_at = queue.popleft()
                duration = samplers[node]()  # type: ignore[misc]
                station.account(queued_at, now, now + duration)
                if frame.counted:
                    replication.visits[node] += 1
                    replication.wait[node] += now - queued_at
                    replication.service[node] += duration
                self.job = (frame, node)
                yield self.hold(duration)
            else:
                station.idle.append(self)
                yield self.passivate()  # a job handed over meanwhile: this resumes at its end


class _Arrivals(sim.Component):
    def setup(self, replication: _Replication) -> None:
        self.replication = replication
        _quiet(self)

    def process(self) -> Any:
        replication = self.replication
        between = replication.interarrival
        horizon = replication.horizon
        env = self.env
        while True:
            gap = between()
            if env._now + gap >= horizon:
                replication.arrivals_over = True
                replication.maybe_stop()
                return
            yield self.hold(gap)
            replication.start_instance()


class _Delays(sim.Component):
    """Every wait without a resource, off one heap: the component holds until the earliest is due."""

    def setup(self, replication: _Replication) -> None:
        self.replication = replication
        self.heap: list[tuple[float, int, _Frame, int]] = []
        self.due = math.inf  # when it is scheduled to wake; inf while passive
        self.running = False
        self.order = count()
        _quiet(self)

    def add(self, at: float, frame: _Frame, node: int) -> None:
        heapq.heappush(self.heap, (at, next(self.order), frame, node))
        if not self.running and at < self.due:
            self.due = at
            self.activate(at=at)

    def process(self) -> Any:
        heap = self.heap
        env = self.env
        replication = self.replication
        while True:
            self.running = True
            while heap and heap[0][0] <= env._now:
                _, _, frame, node = heapq.heappop(heap)
                replication.delay_ends += 1
                if frame.counted:
                    replication.visits[node] += 1  # a delay is counted when it ends, work when it starts
                replication.finish[node](frame, node)
            self.running = False
            if heap:
                self.due = heap[0][0]
                yield self.hold(till=self.due)
            else:
                self.due = math.inf
                yield self.passivate()


class _Clock(sim.Component):
    def setup(self, replication: _Replication, ticks: int) -> None:
        self.replication = replication
        self.ticks = ticks
        _quiet(self)

    def process(self) -> Any:
        replication = self.replication
        if replication.warmup > 0:
            yield self.hold(till=replication.warmup)
        replication.completions_at_warmup = replication.completions
        step = (replication.horizon - replication.warmup) / self.ticks
        for tick in range(1, self.ticks + 1):
            yield self.hold(till=replication.warmup + tick * step)
            replication.tick(self.env._now)
        replication.completions_at_horizon = replication.completions
        replication.horizon_passed = True
        replication.maybe_stop()


class _Status:
    """Stands in for a component's status monitor: the current value, no statistics.

    salabim keeps a statistics-gathering monitor of each component's status and updates it on every
    state change, twice per event, even with monitoring off: about a fifth of the engine's time, for
    figures this module never reads. salabim reads and writes the status only as `status.value`,
    `status._value`, `status()` and `status.reset()` (checked against salabim 26.0.9), which this
    provides. tests/test_twin_model.py checks that a run gives the same figures either way.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    @property
    def _value(self) -> Any:
        return self.value

    @_value.setter
    def _value(self, value: Any) -> None:
        self.value = value

    def __call__(self) -> Any:
        return self.value

    def reset(self, *args: Any, **kwargs: Any) -> None:
        return None


LIGHT_STATUS = True  # False: keep salabim's own status monitors (for the test that compares the two)


def _quiet(component: sim.Component) -> None:
    if LIGHT_STATUS and type(component.status).__name__ == "_StatusMonitor":
        component.status = _Status(component.status.value)
    else:
        component.status.monitor(False)  # at least no arrays that grow with every event
    component.mode.monitor(False)


class _Replication:
    def __init__(
        self,
        model: ProcessModel,
        resolved: Resolved,
        *,
        horizon_s: float,
        drain_s: float,
        rng: np.random.Generator,
        tick: Callable[[float], None] | None,
        ticks: int = 100,
    ) -> None:
        self.model = model
        self.horizon = horizon_s
        self.drain = drain_s
        self.warmup = resolved.warmup_s
        self.on_tick = tick
        ids = list(model.nodes)
        self.ids = ids
        index = {element: i for i, element in enumerate(ids)}
        nodes = [model.nodes[element] for element in ids]
        self.codes = [_CODES[n.kind] for n in nodes]
        self.outputs = [tuple(index[t] for t in n.outputs if t in index) for n in nodes]
        self.inputs = [len(n.inputs) for n in nodes]
        # a token goes straight through start events and gateways that neither choose nor join: link
        # past them once here instead of stepping through them for every token
        self.outputs = [tuple(self._past(t) for t in targets) for targets in self.outputs]
        self.starts = {scope: self._past(index[start]) for scope, start in model.starts.items()}
        self.child_start = [self.starts[n.child_scope] if n.child_scope else -1 for n in nodes]
        self.samplers: list[Callable[[], float] | None] = []
        for n in nodes:
            duration = resolved.durations.get(n.id)
            self.samplers.append(duration.sampler(rng) if duration is not None else None)
        for i, n in enumerate(nodes):
            if self.samplers[i] is None and n.resource is not None:
                self.samplers[i] = _no_time  # it still needs its resource, if only for no time
        self.uniform = _uniform(rng)
        self.interarrival = resolved.arrival.sampler(rng)
        # exclusive gateways: cumulative probabilities; inclusive gateways and boundary events: one each
        self.cumulative: list[tuple[list[float], list[int]] | None] = [None] * len(nodes)
        self.each: list[list[tuple[int, float, bool]] | None] = [None] * len(nodes)
        self.default: list[int] = [index.get(n.default_output or "", -1) for n in nodes]
        for i, n in enumerate(nodes):
            probabilities = resolved.branches.get(n.id)
            if not probabilities:
                continue
            if n.kind == NodeKind.EXCLUSIVE:
                targets = [index[t] for t in probabilities]
                self.cumulative[i] = (list(np.cumsum(list(probabilities.values()))), targets)
            else:
                interrupting = sum(
                    p
                    for t, p in probabilities.items()
                    if model.nodes[t].kind != NodeKind.BOUNDARY or model.nodes[t].interrupting
                )
                if n.kind == NodeKind.TASK and interrupting > 1 + 1e-9:
                    raise ValueError(f"the interrupting boundary events of {n.id!r} add up to more than 1")
                self.each[i] = [
                    (index[t], p, model.nodes[t].kind == NodeKind.BOUNDARY and model.nodes[t].interrupting)
                    for t, p in probabilities.items()
                    if p > 0
                ]
        self.join_match = _inclusive_joins(model, index)

        # random_seed="": salabim would otherwise reseed the process-wide `random` and numpy's global
        # state; every draw here comes from `rng`. It must be the default environment (salabim's own
        # set-up refers to that), which is process-wide: run one simulation at a time per process.
        self.env = sim.Environment(trace=False, random_seed="", set_numpy_random_seed=False, yieldless=False)
        self.stations: dict[str, _Station] = {}
        self.station_of: list[_Station | None] = [None] * len(nodes)
        for resource, capacity in resolved.capacities.items():
            if capacity is None:
                continue  # unlimited: its work waits on `_Delays` like a timer
            station = self.stations[resource] = _Station(resource, capacity, (self.warmup, self.horizon))
            for _ in range(capacity):
                _Server(env=self.env, replication=self, station=station)
        for i, n in enumerate(nodes):
            if n.resource is not None and n.resource in self.stations:
                self.station_of[i] = self.stations[n.resource]
        # what follows timed work at each node: most often an end event, which needs no routing
        self.finish: list[Callable[[_Frame, int], None]] = [
            self._then_end
            if self.each[i] is None and len(self.outputs[i]) == 1 and self.codes[self.outputs[i][0]] == _END
            else self.leave
            for i in range(len(nodes))
        ]
        self.root = self.starts[model.process_id]
        self.delays = _Delays(env=self.env, replication=self)
        self.visits = [0] * len(nodes)
        self.wait = [0.0] * len(nodes)
        self.service = [0.0] * len(nodes)
        self.cycle_times: list[float] = []
        self.open = 0
        self.started = 0
        self.unfinished_counted = 0
        self.completions = 0
        self.completions_at_warmup = 0
        self.completions_at_horizon = 0
        self.arrivals = 0
        self.delay_ends = 0
        self.arrivals_over = False
        self.horizon_passed = False
        _Arrivals(env=self.env, replication=self)
        _Clock(env=self.env, replication=self, ticks=ticks)

    # -- running --------------------------------------------------------------------------------

    def run(self) -> ReplicationOutcome:
        self.env.run(till=self.horizon + self.drain)
        end = self.env._now
        counted_open = self.started - len(self.cycle_times)
        window = self.horizon - self.warmup
        utilisation: dict[str, float] = {}
        queue_length: dict[str, float] = {}
        for name, station in self.stations.items():
            utilisation[name] = station.busy_s / (station.capacity * window)
            queue_length[name] = station.waiting_s / window
        completed_in_window = self.completions_at_horizon - self.completions_at_warmup
        return ReplicationOutcome(
            cycle_times=np.asarray(self.cycle_times, dtype=np.float64),
            started=self.started,
            unfinished=counted_open,
            completed_in_window=completed_in_window,
            window_s=window,
            utilisation=utilisation,
            queue_length=queue_length,
            visits={self.ids[i]: v for i, v in enumerate(self.visits) if v},
            wait_s={self.ids[i]: w for i, w in enumerate(self.wait) if self.visits[i]},
            service_s={self.ids[i]: s for i, s in enumerate(self.service) if self.visits[i]},
            events=self.arrivals + self.delay_ends + sum(station.jobs for station in self.stations.values()),
            end_time=end,
        )

    def tick(self, now: float) -> None:
        if self.on_tick is not None:
            self.on_tick(min(1.0, now / self.horizon))

    def maybe_stop(self) -> None:
        """End the run once arrivals are over, the horizon has passed and no instance is left."""
        if self.arrivals_over and self.horizon_passed and self.open == 0:
            self.env.main().activate()

    # -- tokens ---------------------------------------------------------------------------------

    def _past(self, node: int) -> int:
        for _ in range(len(self.codes)):
            code = self.codes[node]
            passes = code == _START or (
                code in (_XOR, _AND, _OR) and self.inputs[node] <= 1 and len(self.outputs[node]) == 1
            )
            if not passes or len(self.outputs[node]) != 1:
                return node
            node = self.outputs[node][0]
        return node

    def start_instance(self) -> None:
        now = self.env._now
        self.arrivals += 1
        counted = now >= self.warmup
        if counted:
            self.started += 1
        self.open += 1
        self.enter(_Frame(None, -1, now, counted), self.root)

    def leave(self, frame: _Frame, node: int) -> None:
        """Timed work at `node` is done: on to what follows it."""
        each = self.each[node]
        if each is not None:  # boundary events
            draw = self.uniform()
            for target, probability, interrupting in each:
                if interrupting:
                    if draw < probability:
                        self.enter(frame, target)
                        return
                    draw -= probability
                elif self.uniform() < probability:
                    frame.active += 1
                    self.enter(frame, target)
        self._follow(frame, node)

    def _follow(self, frame: _Frame, node: int) -> None:
        outputs = self.outputs[node]
        if len(outputs) == 1:
            target = outputs[0]
            if self.codes[target] == _END:
                self._end_token(frame)
            else:
                self.enter(frame, target)
        elif outputs:
            frame.active += len(outputs) - 1
            for target in outputs:
                self.enter(frame, target)
        else:
            self._end_token(frame)

    def enter(self, frame: _Frame, node: int) -> None:
        """A token arrives at `node`; move it (and any it forks) until each waits on something that takes time."""
        if self.codes[node] == _TIMED:  # the common case first
            station = self.station_of[node]
            if station is not None:
                self._queue(station, frame, node)
                return
        self._route(frame, node)

    def _route(self, frame: _Frame, node: int) -> None:
        stack = [(frame, node)]
        steps = 0
        codes = self.codes
        outputs = self.outputs
        while stack:
            frame, node = stack.pop()
            steps += 1
            if steps > _MAX_INSTANT_STEPS:
                raise ZeroTimeLoopError(f"a token loops through {self.ids[node]!r} without any time passing")
            code = codes[node]
            if code == _TIMED:
                station = self.station_of[node]
                if station is not None:
                    self._queue(station, frame, node)
                    continue
                sampler = self.samplers[node]
                if sampler is not None:
                    self.delays.add(self.env._now + sampler(), frame, node)
                    continue
                if frame.counted:
                    self.visits[node] += 1
                if self.each[node] is not None:
                    self.leave(frame, node)  # for its boundary events
                    continue
            elif code == _END:
                self._end_token(frame)
                continue
            elif code == _XOR:
                branches = self.cumulative[node]
                if branches is not None:
                    cumulative, targets = branches
                    pick = bisect.bisect_right(cumulative, self.uniform() * cumulative[-1])
                    stack.append((frame, targets[min(pick, len(targets) - 1)]))
                    continue
            elif code == _AND:
                if self.inputs[node] > 1 and not self._joined(frame, node, self.inputs[node]):
                    continue
            elif code == _OR:
                if self.inputs[node] > 1:
                    expected = frame.expected.pop(node, 1) if frame.expected else 1
                    if expected > 1 and not self._joined(frame, node, expected):
                        frame.expected = frame.expected or {}
                        frame.expected[node] = expected  # not complete yet: keep waiting for them
                        continue
                if self.each[node] is not None:
                    fired = [t for t, p, _ in self.each[node] or () if self.uniform() < p]
                    if not fired:
                        default = self.default[node]
                        fired = [default] if default >= 0 else [max(self.each[node] or (), key=lambda e: e[1])[0]]
                    frame.active += len(fired) - 1
                    join = self.join_match.get(node)
                    if join is not None:
                        frame.expected = frame.expected or {}
                        frame.expected[join] = len(fired)
                    stack.extend((frame, t) for t in fired)
                    continue
            elif code == _SUB:
                child = _Frame(frame, node, self.env._now, frame.counted)
                stack.append((child, self.child_start[node]))
                continue
            # pass straight through: start events, merges, forks, untimed work
            following = outputs[node]
            if len(following) == 1:
                stack.append((frame, following[0]))
            elif following:
                frame.active += len(following) - 1
                stack.extend((frame, t) for t in following)
            else:
                self._end_token(frame)

    def _joined(self, frame: _Frame, node: int, needed: int) -> bool:
        """One more token at a join: True when it was the last one needed (it goes on), else it is absorbed."""
        joins = frame.joins
        if joins is None:
            joins = frame.joins = {}
        arrived = joins.get(node, 0) + 1
        if arrived >= needed:
            joins.pop(node, None)
            return True
        joins[node] = arrived
        frame.active -= 1
        return False

    def _queue(self, station: _Station, frame: _Frame, node: int) -> None:
        now = self.env._now
        if station.idle:
            server = station.idle.pop()
            duration = self.samplers[node]()  # type: ignore[misc]
            station.account(now, now, now + duration)
            if frame.counted:
                self.visits[node] += 1
                self.service[node] += duration
            server.job = (frame, node)
            server.activate(delay=duration)
        else:
            station.queue.append((frame, node, now))

    def _then_end(self, frame: _Frame, node: int) -> None:
        self._end_token(frame)

    def _end_token(self, frame: _Frame) -> None:
        frame.active -= 1
        if frame.active > 0:
            return
        parent = frame.parent
        if parent is not None:
            self._follow(parent, frame.call)
            return
        self.open -= 1
        self.completions += 1
        if frame.counted:
            self.cycle_times.append(self.env._now - frame.started)
        if self.open == 0:
            self.maybe_stop()


def _no_time() -> float:
    return 0.0


def _uniform(rng: np.random.Generator) -> Callable[[], float]:
    buffer: list[float] = []

    def draw() -> float:
        if not buffer:
            buffer.extend(rng.random(4096).tolist())
        return buffer.pop()

    return draw


def _inclusive_joins(model: ProcessModel, index: dict[str, int]) -> dict[int, int]:
    """Inclusive split → the inclusive join that every one of its paths reaches first, where there is one."""
    matched: dict[int, int] = {}
    for node in model.nodes.values():
        if node.kind != NodeKind.INCLUSIVE or len(node.outputs) < 2:
            continue
        firsts: set[str] = set()
        for start in node.outputs:
            seen: set[str] = set()
            pending = [start]
            while pending:
                current = pending.pop()
                if current in seen or current not in model.nodes:
                    continue
                seen.add(current)
                candidate = model.nodes[current]
                if candidate.kind == NodeKind.INCLUSIVE and len(candidate.inputs) > 1:
                    firsts.add(current)
                    continue
                pending.extend(candidate.outputs)
        if len(firsts) == 1:
            matched[index[node.id]] = index[firsts.pop()]
    return matched


def run_replication(
    model: ProcessModel,
    resolved: Resolved,
    *,
    horizon_s: float,
    drain_s: float,
    seed: np.random.SeedSequence,
    tick: Callable[[float], None] | None = None,
) -> ReplicationOutcome:
    replication = _Replication(
        model, resolved, horizon_s=horizon_s, drain_s=drain_s, rng=np.random.default_rng(seed), tick=tick
    )
    return replication.run()
