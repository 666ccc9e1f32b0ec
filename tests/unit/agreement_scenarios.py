"""One table of scenarios that the exporter's health evaluation and the bundled alert rules must
judge alike: `unhealthy` (the shims answer 503) pages, `degraded` makes a ticket, `ok` is quiet.

A scenario is data: the facts of one system (its source up or down, queues, workers, shares,
components, checks) and the verdict and issue ids the health evaluation must reach. The rules side
turns the facts into the series the exporter would expose (`series()`), steady for 45 minutes so
that every `for:` and range window of the rules is satisfied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SYSTEM = "shop"
SOURCE = "cache"
BACKEND = "redis"
LABELS = 'job="jobqueue-exporter",instance="e:9839"'
STEPS = 45  # one sample per minute
EVAL_TIME = "40m"


@dataclass(frozen=True)
class Queue:
    """One queue of the source: `oldest_age` seconds; `head_moves` False means the oldest item never leaves."""

    queue: str = "default"
    depth: int = 0
    tenant: str = ""
    oldest_age: float | None = None
    head_moves: bool = True
    failed: int | None = None
    reserved: int = 0
    # Live workers the library reports for the queue (jobqueue_workers, summed over busy, idle and
    # unknown); None: the library reports none (the series is absent).
    workers: int | None = None


@dataclass(frozen=True)
class Worker:
    """A background worker expected every `interval` seconds, last seen `since` seconds ago."""

    name: str
    interval: float
    since: float
    idle: bool = False


@dataclass(frozen=True)
class Scenario:
    name: str
    verdict: str  # ok | degraded | unhealthy: the common health status (503 iff unhealthy)
    issues: tuple[str, ...] = ()  # issue ids the health evaluation raises
    up: bool = True
    queues: tuple[Queue, ...] = ()
    workers: tuple[Worker, ...] = ()
    stuck: bool = False  # ready items while the draining worker reports idle (the seeds' stuck rule)
    ready: int | None = None  # ready items the stuck rule reads; None: the first queue's depth
    quiet: bool = False  # inside the system's quiet hours
    check_down: bool = False  # an operator SQL check the system reads cannot run (jobqueue_check_up 0)
    disabled: tuple[int, int] | None = None  # (disabled, total) items
    component_down: bool = False
    check_warn: bool = False
    # False when only the system-status alerts carry the verdict (no metric shows the fact itself).
    symptom: bool = True
    notes: str = ""
    extra: dict[str, str] = field(default_factory=dict)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("all quiet", "ok", queues=(Queue(depth=5, oldest_age=20, failed=0),),
             workers=(Worker("refresh", 30, 10),)),
    Scenario("backend down", "unhealthy", ("backend_unreachable",), up=False),
    Scenario("depth just under the warning threshold", "ok", queues=(Queue(depth=99, oldest_age=30),)),
    Scenario("depth at the warning threshold", "degraded", ("queue_depth_warning",),
             queues=(Queue(depth=100, oldest_age=30),)),
    Scenario("depth at the critical threshold", "degraded", ("queue_depth_warning",),
             queues=(Queue(depth=1000, oldest_age=30),)),
    Scenario("depth over the critical threshold", "unhealthy", ("queue_depth_critical",),
             queues=(Queue(depth=1001, oldest_age=30),)),
    Scenario("failures at the threshold", "ok", queues=(Queue(depth=3, oldest_age=5, failed=10),)),
    Scenario("failures over the threshold", "unhealthy", ("failed_jobs",),
             queues=(Queue(depth=3, oldest_age=5, failed=11),)),
    Scenario("worker late but within 2.5 intervals", "ok", workers=(Worker("backfill", 600, 1400),)),
    Scenario("worker stale past 2.5 intervals", "unhealthy", ("worker_stale",),
             workers=(Worker("backfill", 600, 1560),)),
    Scenario("queue stuck: ready items, idle worker", "unhealthy", ("queue_stuck",),
             queues=(Queue(depth=100 - 1, oldest_age=900, head_moves=False),),
             workers=(Worker("refresh", 30, 10, idle=True),), stuck=True, ready=150),
    # Seed 004's "many ready items": 100 by default; a few a 30 s poller has not reached yet are normal.
    Scenario("a few ready items beside an idle worker", "ok", queues=(Queue(depth=5, oldest_age=20),),
             workers=(Worker("refresh", 30, 10, idle=True),), stuck=True, ready=5),
    # Seed 004 marks a worker stale past 2.5 intervals with no quiet-hours exception, and so do both sides.
    Scenario("worker stale in quiet hours", "unhealthy", ("worker_stale",),
             workers=(Worker("backfill", 600, 1560),), quiet=True),
    # Issue 22 item 7: a check the system reads cannot run; what it feeds is unknown, never "ok".
    Scenario("a check the system reads cannot run", "degraded", ("check_failed",), check_down=True),
    Scenario("disabled share at 10%", "ok", disabled=(10, 100)),
    Scenario("disabled share over 10%", "degraded", ("disabled_share",), disabled=(15, 127)),
    Scenario("a component unhealthy", "unhealthy", ("component_unhealthy",), component_down=True, symptom=False),
    Scenario("a consistency check warns", "degraded", ("check_warn",), check_warn=True, symptom=False),
    # What the exporter reports for a stream whose every entry was delivered and acknowledged (depth =
    # group lag 0, no oldest timestamp, whatever XLEN says), beside an idle consumer: quiet.
    Scenario("a drained stream beside an idle consumer", "ok", queues=(Queue("audit", depth=0),),
             workers=(Worker("refresh", 30, 10, idle=True),)),
    # A tenant whose lists drained (Redis deleted the keys): still known, depth 0, no age: quiet, not absent.
    Scenario("an idle tenant", "ok", queues=(Queue("events", depth=0, tenant="acme"),
                                             Queue("heartbeats", depth=0, tenant="acme"))),
    Scenario("warning and critical at once", "unhealthy", ("queue_depth_warning", "worker_stale"),
             queues=(Queue(depth=500, oldest_age=60),), workers=(Worker("backfill", 600, 3600),)),
    # Flow and workers: a backlog under the thresholds with live workers that take it is quiet.
    Scenario("a backlog with live workers", "ok", queues=(Queue(depth=50, oldest_age=20, workers=2),)),
    # Horizon down: its supervisors stopped heartbeating, so it reports no live process for `high`
    # (workers 0), but the queue stays known and its 100 jobs keep reporting (the inventory); the
    # system watches Horizon's master heartbeat as a worker, which goes stale. Pages both ways.
    Scenario("Horizon down with a backlog", "unhealthy", ("queue_depth_warning", "worker_stale"),
             queues=(Queue("high", depth=100, oldest_age=600, head_moves=False, workers=0),),
             workers=(Worker("horizon", 30, 600),)),
)


def _constant(value: float) -> str:
    return f"{value:g}x{STEPS}"


def _moving(start: float) -> str:
    """A timestamp that advances with the clock (one step = 60 s): its age stays constant."""
    return f"{start:g}+60x{STEPS}"


def series(s: Scenario, status: str | None, issues: tuple[str, ...]) -> list[dict[str, str]]:
    """promtool `input_series` for the scenario's facts, plus the exporter's health series.

    `status` (the exporter's verdict, or None to leave jobqueue_health_status out) and `issues` come
    from the health evaluation when it runs, else from the table.
    """
    out: list[dict[str, str]] = []

    def add(name: str, labels: str, values: str) -> None:
        out.append({"series": f"{name}{{{LABELS}{',' if labels else ''}{labels}}}", "values": values})

    add("up", "", _constant(1))  # the exporter itself is scraped
    src = f'source="{SOURCE}"'
    add("jobqueue_source_up", f'{src},backend="{BACKEND}"', _constant(1 if s.up else 0))
    add("jobqueue_last_success_timestamp_seconds", src, _moving(0) if s.up else _constant(-60))
    if s.up:
        for q in s.queues:
            ql = f'{src},tenant="{q.tenant}",queue="{q.queue}"'
            add("jobqueue_depth", ql, _constant(q.depth))
            add("jobqueue_jobs", f'{ql},state="reserved"', _constant(q.reserved))
            if q.oldest_age is not None:
                add("jobqueue_oldest_age_seconds", ql, _constant(q.oldest_age) if q.head_moves
                    else f"{q.oldest_age:g}+60x{STEPS}")
                add("jobqueue_oldest_timestamp_seconds", ql,
                    _moving(-q.oldest_age) if q.head_moves else _constant(-q.oldest_age))
            if q.failed is not None:
                add("jobqueue_failed_jobs", ql, _constant(q.failed))
            if q.workers is not None:  # Horizon's shape: processes as `unknown`, a paused supervisor's as `paused`
                add("jobqueue_workers", f'{ql},state="unknown"', _constant(q.workers))
                add("jobqueue_workers", f'{ql},state="paused"', _constant(0))
    if s.up and s.check_down:
        add("jobqueue_check_up", f'{src},check="planning"', _constant(0))
    if s.quiet:
        add("jobqueue_health_quiet_hours", f'system="{SYSTEM}"', _constant(1))
    for w in s.workers:
        wl = f'system="{SYSTEM}",worker="{w.name}"'
        add("jobqueue_worker_last_run_timestamp_seconds", wl, _moving(-w.since))
        add("jobqueue_worker_expected_interval_seconds", wl, _constant(w.interval))
    if status is not None:
        for state in ("ok", "degraded", "unhealthy"):
            add("jobqueue_health_status", f'system="{SYSTEM}",status="{state}"', _constant(int(state == status)))
    for issue in issues:
        add("jobqueue_health_issue", f'system="{SYSTEM}",issue="{issue}"', _constant(1))
    return out
