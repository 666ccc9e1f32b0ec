"""The rule kinds of a system, each a pure function from (snapshot, rule, history) to issues.

Issue ids are short and stable (`source_down:redis`, `queue_critical:events`, `worker_stale:backfill`)
because they become the `issue` label of `jobqueue_health_issue`; the text is for people and may
change with the numbers. Texts of the planning seed (004) are reproduced word for word.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from exporter.facts import CheckRecord
from exporter.health.config import QueueRule, SystemConfig
from exporter.health.data import read
from exporter.health.history import History
from exporter.model import Snapshot
from exporter.values import as_bool, as_int, as_number, as_time, dig

OK, DEGRADED, UNHEALTHY, INFO = "ok", "degraded", "unhealthy", "info"


@dataclass(frozen=True, slots=True)
class Issue:
    """One active problem of a system: a stable id, human text, and what it does to the status."""

    id: str
    text: str
    severity: str  # unhealthy | degraded | info
    source: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerState:
    """What is known of a background worker: its last run, its state, and whether it is stale."""

    name: str
    last_run: float | None
    state: str | None  # working | idle | None when unknown
    stale: bool
    interval: float | None = None  # the configured interval, exported so the alert rules use the same one


def status_of(issues: tuple[Issue, ...] | list[Issue]) -> str:
    """unhealthy beats degraded beats ok; info issues change nothing."""
    severities = {i.severity for i in issues}
    return UNHEALTHY if UNHEALTHY in severities else DEGRADED if DEGRADED in severities else OK


def in_quiet_hours(window: str | None, zone: str, now: float) -> bool:
    """Whether `now` falls inside `HH:MM-HH:MM` (which may wrap past midnight) in `zone`."""
    if not window:
        return False
    start, end = window.split("-")
    local = datetime.fromtimestamp(now, ZoneInfo(zone))
    minute = local.hour * 60 + local.minute
    a = int(start[:2]) * 60 + int(start[3:])
    b = int(end[:2]) * 60 + int(end[3:])
    if a == b:
        return False
    return a <= minute < b if a < b else minute >= a or minute < b


def ago(seconds: float) -> str:
    """45 -> '45s', 2700 -> '45m', 8100 -> '2h15m' (the planning seed's 'Backfill stale (45m ago)')."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours}h{minutes}m" if minutes else f"{hours}h"


def queue_level(waiting: int | None, failed: int | None, rule: QueueRule) -> str:
    """healthy (< warning), warning (warning..critical), critical (> critical or failures > failed_critical)."""
    if (waiting is not None and waiting > rule.critical) or (failed is not None and failed > rule.failed_critical):
        return "critical"
    if waiting is not None and waiting >= rule.warning:
        return "warning"
    return "healthy"


def source_issues(system: SystemConfig, snapshot: Snapshot) -> Iterator[Issue]:
    """Backend unreachable: each source of the system that collected and failed."""
    seen: set[str] = set()
    for _, name in system.referenced_sources():
        state = snapshot.sources.get(name)
        if name in seen or state is None:
            continue
        seen.add(name)
        if state.status.collections > 0 and not state.status.up:
            kind = state.status.error_kind or "error"
            yield Issue(f"source_down:{name}", f"{name} unreachable ({kind})", system.down, name)


def queue_issues(system: SystemConfig, snapshot: Snapshot, history: History) -> Iterator[Issue]:
    """Waiting and failure thresholds per queue (the worst tenant counts), and depth rising over polls."""
    for rule in system.queues:
        reading = snapshot.reading(rule.source)
        if reading is None:
            continue
        for name, summary in history.summary(rule.source, reading, rule.queue, rule.tenant).items():
            depth, failed, tenant = summary.worst, summary.failed_worst, summary.worst_tenant
            where = f"Queue {name}" + (f" (tenant {tenant})" if tenant else "")
            if depth > rule.critical:
                yield Issue(f"queue_critical:{name}", f"{where}: {depth} waiting (> {rule.critical})", UNHEALTHY,
                            rule.source)
            elif depth >= rule.warning:
                yield Issue(f"queue_warning:{name}", f"{where}: {depth} waiting (>= {rule.warning})", DEGRADED,
                            rule.source)
            if failed is not None and failed > rule.failed_critical:
                yield Issue(f"queue_failed:{name}", f"Queue {name}: {failed} failed jobs (> {rule.failed_critical})",
                            UNHEALTHY, rule.source)
            if rule.rising_polls:
                depths = history.depths(rule.source, rule.tenant, name)[-(rule.rising_polls + 1):]
                if len(depths) == rule.rising_polls + 1 and all(a < b for a, b in pairwise(depths)):
                    yield Issue(f"depth_rising:{name}", f"Queue {name}: depth rising over {rule.rising_polls} polls "
                                f"({depths[0]} -> {depths[-1]})", DEGRADED, rule.source)


def worker_states(system: SystemConfig, snapshot: Snapshot, now: float) -> dict[str, WorkerState]:
    """Last run and state of each worker; stale past factor x interval (unknown last run is not stale)."""
    out = {}
    for rule in system.workers:
        reading = snapshot.reading(rule.source)
        details = reading.details if reading is not None else None
        last = as_time(dig(details, rule.last_run))
        raw = dig(details, rule.state) if rule.state else None
        flag = as_bool(raw)
        state = ("working" if flag else "idle") if flag is not None else (raw if isinstance(raw, str) else None)
        stale = last is not None and now - last > rule.factor * rule.interval
        out[rule.name] = WorkerState(rule.name, last, state, stale, rule.interval)
    return out


def worker_issues(system: SystemConfig, snapshot: Snapshot, workers: dict[str, WorkerState],
                  now: float) -> Iterator[Issue]:
    """Stale workers and stuck queues (many ready items, idle worker), quiet hours or not: seed 004 makes
    no exception for them (`inQuietHours` is reported, not a reason to stay silent)."""
    for rule in system.workers:
        worker = workers[rule.name]
        if worker.stale and worker.last_run is not None:
            label = rule.name[:1].upper() + rule.name[1:]
            yield Issue(f"worker_stale:{rule.name}", f"{label} stale ({ago(now - worker.last_run)} ago)", UNHEALTHY,
                        rule.source)
    for stuck in system.stuck:
        ready = as_int(read(snapshot, stuck.source, stuck.ready))
        idle = workers.get(stuck.worker)
        if ready is not None and ready >= stuck.min_ready and idle is not None and idle.state == "idle":
            yield Issue(f"queue_stuck:{stuck.worker}", f"Queue stuck: {ready} ready but worker idle", UNHEALTHY,
                        stuck.source)


def component_issues(system: SystemConfig, snapshot: Snapshot) -> Iterator[Issue]:
    """A component (or each item of a list of components) whose status is not one of the ok values."""
    for rule in system.components:
        value = read(snapshot, rule.source, rule.path)
        if value is None:
            continue
        items: list[tuple[str, Any]]
        if isinstance(value, list):
            items = [(str(i.get(rule.name_field) or i.get("name") or n), i.get(rule.status_field))
                     for n, i in enumerate(value) if isinstance(i, dict)]
        elif isinstance(value, dict) and rule.status_field in value:
            items = [(rule.name, value.get(rule.status_field))]
        else:
            items = [(rule.name, value)]
        ok = {v.lower() for v in rule.ok}
        for name, status in items:
            word = str(status).lower() if status is not None else "unknown"
            if word not in ok:
                suffix = "" if name == rule.name else f":{name}"
                yield Issue(f"component_unhealthy:{rule.name}{suffix}", f"{name} is {status or 'unknown'}",
                            rule.severity, rule.source)


def share_issues(system: SystemConfig, snapshot: Snapshot) -> Iterator[Issue]:
    """`High disabled: 15/127 (12%)` when the share is over the limit."""
    for rule in system.shares:
        total = as_number(read(snapshot, rule.source, rule.total))
        part = as_number(read(snapshot, rule.source, rule.part))
        if total and part is not None and part / total > rule.max_ratio:
            yield Issue(f"high_{rule.label}", f"High {rule.label}: {int(part)}/{int(total)} "
                        f"({round(100 * part / total)}%)", rule.severity, rule.source)


def jobs_issues(system: SystemConfig, snapshot: Snapshot) -> Iterator[Issue]:
    """Jobs switched off or never started (unhealthy), or paused (degraded)."""
    rule = system.jobs
    if rule is None or snapshot.reading(rule.source) is None:
        return
    enabled = as_bool(read(snapshot, rule.source, rule.enabled)) if rule.enabled else True
    started = as_bool(read(snapshot, rule.source, rule.started)) if rule.started else True
    paused = as_bool(read(snapshot, rule.source, rule.paused)) if rule.paused else False
    if enabled is False or started is False:
        yield Issue("jobs_not_started", "Jobs not started", UNHEALTHY, rule.source)
    elif paused:
        yield Issue("jobs_paused", "Jobs paused", DEGRADED, rule.source)


def checks_read(system: SystemConfig) -> dict[str, set[str]]:
    """Per source, the checks the system depends on: those its rules read (`checks.<name>...` paths)
    and those a `checks` rule names; a check among them that cannot run leaves the system blind."""
    paths: list[tuple[str, str | None]] = []
    for w in system.workers:
        paths += [(w.source, w.last_run), (w.source, w.state)]
    paths += [(s.source, s.ready) for s in system.stuck]
    paths += [(c.source, c.path) for c in system.components]
    for share in system.shares:
        paths += [(share.source, share.total), (share.source, share.part)]
    if system.jobs is not None:
        paths += [(system.jobs.source, p) for p in (system.jobs.enabled, system.jobs.started, system.jobs.paused)]
    out: dict[str, set[str]] = {}
    for source, path in paths:
        parts = (path or "").split(".")
        if len(parts) > 1 and parts[0] == "checks":
            out.setdefault(source, set()).add(parts[1])
    for rule in system.checks:
        out.setdefault(rule.source, set()).update(rule.checks or ())
    return out


def check_issues(system: SystemConfig, snapshot: Snapshot) -> Iterator[Issue]:
    """Checks the system reads that cannot run degrade it (a blind rule must not read as ok); consistency
    checks with rows: warn degrades, info is listed only, error/critical is unhealthy."""
    needed = checks_read(system)
    consistency = {r.source for r in system.checks if r.checks is None}
    for source in dict.fromkeys([*needed, *consistency]):
        reading = snapshot.reading(source)
        if reading is None:
            continue  # the source is down: source_issues says so
        names = needed.get(source, set())
        for check in reading.facts_of(CheckRecord):
            name = check.name
            if name not in names and (check.severity is None or source not in consistency):
                continue
            if check.error:
                yield Issue(f"check_failed:{name}", f"Check {name} cannot run: {check.error}", DEGRADED, source)
            elif check.count > 0 and check.severity is not None:
                severity = {"warn": DEGRADED, "info": INFO}.get(check.severity, UNHEALTHY)
                yield Issue(f"check:{name}", f"{name}: {check.count} found ({check.severity})", severity, source)
