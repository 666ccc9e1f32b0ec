"""Health of each configured system, evaluated once per snapshot and kept for the web and /metrics.

`HealthMonitor` is a scheduler listener: every new snapshot updates a short in-memory history
(source latency and success, queue depths, completed counts), re-evaluates every system's rules
(`exporter/health/rules.py`) and logs raised and resolved issues, which the platform shim serves as
alerts when no Alertmanager is configured. Requests only read `monitor.current`; they never evaluate.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from exporter.health.config import SystemConfig
from exporter.health.history import History
from exporter.health.rules import (
    DEGRADED,
    OK,
    UNHEALTHY,
    Issue,
    WorkerState,
    check_issues,
    component_issues,
    in_quiet_hours,
    jobs_issues,
    queue_issues,
    share_issues,
    source_issues,
    status_of,
    worker_issues,
    worker_states,
)
from exporter.model import Sample, Snapshot
from exporter.scheduler import Scheduler

log = logging.getLogger("jobqueue.health")

STATES = (OK, DEGRADED, UNHEALTHY)


@dataclass(frozen=True)
class SystemHealth:
    """The verdict on one system for one snapshot."""

    name: str
    status: str
    issues: tuple[Issue, ...]
    in_quiet_hours: bool
    workers: Mapping[str, WorkerState]
    evaluated_at: float

    def issues_of(self, source: str) -> list[Issue]:
        return [i for i in self.issues if i.source == source]


@dataclass
class Event:
    """An issue that was raised at `at` (and resolved at `resolved_at`, if it has been)."""

    number: int
    system: str
    issue: Issue
    at: float
    resolved_at: float | None = None


class HealthMonitor:
    """Evaluates every system on each new snapshot; `current` holds the latest verdicts."""

    def __init__(self, systems: Iterable[SystemConfig], clock: Callable[[], float] = time.time,
                 history: History | None = None, max_events: int = 10000) -> None:
        self.systems = list(systems)
        self.clock = clock
        self.history = history or History()
        self.current: dict[str, SystemHealth] = {}
        self.events: deque[Event] = deque(maxlen=max_events)
        self._open: dict[tuple[str, str], Event] = {}
        self._numbers = itertools.count(1)

    def __call__(self, snapshot: Snapshot) -> None:
        """The scheduler listener: update history, evaluate, log raised and resolved issues."""
        now = self.clock()
        self.history.observe(snapshot, self.systems)
        current = {s.name: evaluate(s, snapshot, self.history, now) for s in self.systems}
        self._track(current, now)
        self.current = current

    def _track(self, current: dict[str, SystemHealth], now: float) -> None:
        active = {(name, i.id): i for name, h in current.items() for i in h.issues}
        for key, issue in active.items():
            if key not in self._open:
                event = Event(next(self._numbers), key[0], issue, now)
                self._open[key] = event
                self.events.append(event)
                log.info("issue raised", extra={"system": key[0], "issue": issue.id, "severity": issue.severity})
        for key in [k for k in self._open if k not in active]:
            self._open.pop(key).resolved_at = now
            log.info("issue resolved", extra={"system": key[0], "issue": key[1]})

    def get(self, name: str) -> SystemHealth | None:
        return self.current.get(name)

    def samples(self, snapshot: Snapshot) -> list[Sample]:
        """The derived series for the renderer: status StateSet, active issues, worker last runs."""
        status, issues, workers, intervals, quiet = [], [], [], [], []
        for name in sorted(self.current):
            health = self.current[name]
            quiet.append(Sample("jobqueue_health_quiet_hours", (name,), health.in_quiet_hours))
            for state in STATES:
                status.append(Sample("jobqueue_health_status", (name, state), 1 if health.status == state else 0))
            for issue_id in sorted({i.id for i in health.issues}):
                issues.append(Sample("jobqueue_health_issue", (name, issue_id), 1))
            for worker in sorted(health.workers.values(), key=lambda w: w.name):
                if worker.interval is not None:
                    intervals.append(Sample("jobqueue_worker_expected_interval_seconds", (name, worker.name),
                                            worker.interval))
                if worker.last_run is not None:
                    workers.append(Sample("jobqueue_worker_last_run_timestamp_seconds", (name, worker.name),
                                          worker.last_run))
        return [*status, *issues, *quiet, *workers, *intervals]


def evaluate(system: SystemConfig, snapshot: Snapshot, history: History, now: float) -> SystemHealth:
    """Every rule of one system over one snapshot; pure but for reading the history."""
    quiet = in_quiet_hours(system.quiet_hours, system.timezone, now)
    workers = worker_states(system, snapshot, now)
    issues: list[Issue] = [
        *source_issues(system, snapshot),
        *component_issues(system, snapshot),
        *jobs_issues(system, snapshot),
        *worker_issues(system, snapshot, workers, now),
        *queue_issues(system, snapshot, history),
        *share_issues(system, snapshot),
        *check_issues(system, snapshot),
    ]
    unique: dict[str, Issue] = {}
    for issue in issues:
        unique.setdefault(issue.id, issue)
    found = tuple(unique.values())
    return SystemHealth(system.name, status_of(found), found, quiet, workers, now)


def attach(scheduler: Scheduler, systems: Iterable[SystemConfig]) -> HealthMonitor:
    """Wire health to the scheduler, once (the composition root, `exporter.cli.build_scheduler`, does):
    a listener per snapshot, samples for /metrics. The web and a reload find it with `monitor_of`."""
    monitor = HealthMonitor(systems, clock=scheduler.clock)
    scheduler.listeners.append(monitor)
    scheduler.producers.append(monitor.samples)
    monitor(scheduler.snapshot)
    return monitor


def monitor_of(scheduler: Scheduler) -> HealthMonitor:
    """The monitor `attach` wired to the scheduler."""
    for listener in scheduler.listeners:
        if isinstance(listener, HealthMonitor):
            return listener
    raise LookupError("the scheduler has no health monitor: build it with exporter.cli.build_scheduler")
