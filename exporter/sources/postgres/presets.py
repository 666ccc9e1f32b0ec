"""The SQL of each Postgres queue preset and the pure functions that fold its rows.

Every preset is ONE statement per cycle returning rows of
`(tenant text, queue text, state text, n bigint, oldest float8, stale bigint)`: `oldest` is the
earliest enqueue (or ready) time of the group in Unix seconds, `stale` counts rows of a processing
state not updated within `stale_after`. Pseudo-states carry the other facts: `_queue` registers a
queue that has no job (depth 0), `_paused` says whether a queue is paused (`n` 1 or 0),
`_done_<outcome>` counts jobs finished within the preset's window, `_workers_<state>` counts live
workers (queue ""), `_scheduler` counts live leader/dispatcher processes.

A library preset reads only what is proportional to the backlog, through the library's own
indexes: the unfinished states, and finished jobs over a recent window by an indexed finished-at
column; counting the history (`count_finished`) is opt-in. Where the statement depends on the
library's schema version, a probe runs once before the first collection and the statement is
built from its facts; an older schema fails the preset with `UnsupportedVersion`, naming the
version needed. Table and column names are quoted identifiers from the config; status values
travel as parameters or literals of the library's own state names.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from exporter.model import QueueStats
from exporter.sources.postgres.config import (
    AnyPreset,
    GenericPreset,
    GoodJobPreset,
    GraphileWorkerPreset,
    ObanPreset,
    PgBossPreset,
    PgmqPreset,
    ProcrastinatePreset,
    RiverPreset,
    SolidQueuePreset,
    quote_ident,
)

HOUR = 3600.0  # the only finished window that is seed 003's `completed_last_hour`


@dataclass(frozen=True, slots=True)
class PresetQuery:
    """One preset's statement and how to read its rows."""

    name: str
    sql: str
    args: tuple[Any, ...]
    states: tuple[str, ...]  # known states, reported (0 when absent) for every queue seen
    waiting: frozenset[str]  # summed into depth; their `oldest` is the queue's oldest
    failed: frozenset[str] | None  # summed into `failed`; None: the backend has no failed state
    processing: frozenset[str] = frozenset()  # their `stale` column becomes the `stale` state
    queues: tuple[str, ...] = ()  # always reported
    pausable: bool = False  # the backend records pauses: `paused` is False unless a `_paused` row says so
    stale: bool = False
    kind: str = "rows"  # "rows" or "pivot" (the generic preset)
    timeout: float | None = None
    window: float | None = None  # `_done_<outcome>` rows count jobs finished within this many seconds
    outcomes: tuple[str, ...] = ()  # the outcomes the window reports (0 when a queue had none)
    workers: tuple[str, ...] = ()  # `_workers_<state>` rows: live workers (queue "") by state
    scheduler: bool = False  # a `_scheduler` row: live leader/dispatcher processes
    probe: str | None = None  # run once before the first collection (one row of facts about the schema)
    requires: Callable[[Mapping[str, Any]], None] | None = None  # raises UnsupportedVersion on the facts
    resolve: Callable[[Mapping[str, Any]], PresetQuery] | None = None  # the statement built from the facts
    statistics: bool = False  # an `_unanalyzed` row: tables of the preset never analyzed
    listing: str | None = None  # run first every cycle: the rows `expand` builds the statement from
    expand: Callable[[Sequence[Sequence[Any]]], str] | None = None


class UnsupportedVersion(Exception):
    """The library's schema is older than the preset supports; the message names the version it needs."""


@dataclass(frozen=True, slots=True)
class Flow:
    """What a preset read besides its queues: live workers, schedulers, jobs finished in the window."""

    workers: dict[str, int]  # state -> live workers (queue "")
    scheduler: int | None  # live leader/dispatcher processes, None when the library has none
    finished: list[dict[str, Any]]  # [{tenant, queue, window_seconds, <outcome>: n}] per queue
    capacity: int | None = None  # job slots of the live workers, where the library records them
    busy_slots: int | None = None  # of those, slots running a job now
    malformed: int = 0  # rows the library wrote that cannot be read (a worker's metadata that is not JSON)
    unanalyzed: int | None = None  # tables the preset reads that have never been analyzed


def _epoch(aggregate: str, unit: str = "timestamp") -> str:
    """An aggregate of a timestamp (or of epoch seconds / milliseconds) as Unix seconds."""
    if unit == "s":
        return f"({aggregate})::float8"
    if unit == "ms":
        return f"({aggregate})::float8 / 1000.0"
    return f"extract(epoch FROM {aggregate})::float8"


def generic(p: GenericPreset) -> PresetQuery:
    """A job table of your own: one row per (tenant, queue) with one count column per status value.

    The inner aggregate reads only the configured status values (the recommended partial index
    holds exactly those rows, in (tenant, queue, status, enqueued) order, so it streams without a
    hash table or a sort); the outer one pivots the few states of a queue into columns, keeping the
    result at one row per queue, which is what makes 10k tenants cheap to read and fold. Counts
    are int4 per (tenant, queue, status) so that their sums are bigint, not the slower numeric.
    """
    values = [*p.waiting, *p.processing, *p.failed, *p.other]
    args: list[Any] = [values]

    def param(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    status = quote_ident(p.status_column)
    tenant = quote_ident(p.tenant_column) if p.tenant_column else "''"
    queue = quote_ident(p.queue_column) if p.queue_column else f"{param(p.queue)}::text"
    group = ", ".join(quote_ident(c) for c in (p.tenant_column, p.queue_column, p.status_column) if c)
    stale_in = "0"
    if p.updated_column and p.stale_after:
        stale_in = (f"(count(*) FILTER (WHERE {quote_ident(p.updated_column)} < "
                    f"now() - make_interval(secs => {param(float(p.stale_after))})))::int")
    waiting = param(list(p.waiting))
    stale = f"coalesce(sum(stale) FILTER (WHERE s = ANY({param(list(p.processing))})), 0)"
    failed = "NULL::bigint"
    if p.failed:
        failed = f"coalesce(sum(n) FILTER (WHERE s = ANY({param(list(p.failed))})), 0)"
    counts = ", ".join(f"coalesce(sum(n) FILTER (WHERE s = {param(v)}), 0)" for v in values)
    sql = (
        f"WITH g AS (SELECT {tenant} AS t, {queue} AS q, {status} AS s, count(*)::int AS n, "
        f"min({quote_ident(p.enqueued_column)}) AS oldest, {stale_in} AS stale "
        f"FROM {quote_ident(p.table)} WHERE {status} = ANY($1) GROUP BY {group}) "
        f"SELECT t::text AS tenant, q::text AS queue, "
        f"{_epoch(f'min(oldest) FILTER (WHERE s = ANY({waiting}))', p.enqueued_unit)} AS oldest, {stale} AS stale, "
        f"coalesce(sum(n) FILTER (WHERE s = ANY({waiting})), 0) AS depth, {failed} AS failed, {counts} "
        "FROM g GROUP BY t, q ORDER BY t, q"
    )
    states = (*values, "stale") if p.stale_after else tuple(values)
    return PresetQuery(p.query_name, sql, tuple(args), states, frozenset(p.waiting),
                       frozenset(p.failed) if p.failed else None, frozenset(p.processing),
                       tuple(p.queues) if not p.tenant_column else (), stale=p.stale_after is not None,
                       kind="pivot", timeout=p.timeout)


def _literal(text: str) -> str:
    """A string as an SQL literal (for `to_regclass('schema.table')`)."""
    return "'" + text.replace("'", "''") + "'"


def _secs(seconds: float) -> str:
    """A config duration as an SQL interval literal (a float from the config, never request data)."""
    return f"interval '{float(seconds)!r} seconds'"


def _version(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


WINDOW_BUCKETS = 60  # a window is kept as this many buckets per (queue, outcome): 1 min of a 1 h window
WINDOW_OVERLAP = 2  # buckets re-read every cycle, so a job whose transaction commits late is still counted


def _window(window: float, queue: str, outcome: str, at: str, source: Callable[[str], str],
            utc: bool = False) -> list[str]:
    """The finished window read incrementally (see FinishedWindow): jobs finished since `$1` (Unix
    seconds, from the source; never before the window's first whole bucket) by bucket of
    window/60 s, the jobs of the window's first, partial bucket in one count (re-read every cycle:
    1/60 of the window), and the database's own `now()` and first whole bucket.

    `at` is the library's finished-at column; `source(condition)` the FROM clause reaching its index
    with that condition on `at`; `utc`: the column is a UTC timestamp without time zone.
    """
    width = window / WINDOW_BUCKETS
    now = "extract(epoch FROM now())::float8"
    edge = f"(floor(({now} - {window!r}) / {width!r}) * {width!r} + {width!r})"

    def ts(epoch: str) -> str:
        return f"timezone('UTC', to_timestamp({epoch}))" if utc else f"to_timestamp({epoch})"

    since = ts(f"greatest($1::float8, {edge})")
    start = f"timezone('UTC', now()) - {_secs(window)}" if utc else f"now() - {_secs(window)}"
    bucket = f"floor(extract(epoch FROM {at})::float8 / {width!r}) * {width!r}"
    return [
        f"SELECT '', {queue}, '_done_' || {outcome}, count(*), {bucket}, 0 {source(f'{at} >= {since}')} "
        "GROUP BY 2, 3, 5",
        f"SELECT '', {queue}, '_first_' || {outcome}, count(*), NULL, 0 "
        f"{source(f'{at} > {start} AND {at} < {ts(edge)}')} GROUP BY 2, 3",
        f"SELECT '', '', '_window_now', 0, {now}, 0",
        f"SELECT '', '', '_window_edge', 0, {edge}, 0",
    ]


def pgmq(p: PgmqPreset) -> PresetQuery:
    """pgmq: per queue of `pgmq.meta`, all / visible (`vt <= now()`) messages and the oldest visible one.

    `pgmq.metrics_all()` is not used: its oldest age includes invisible (in-flight) messages, and
    before pgmq 1.5 it has no visible count. The queue tables are named only in `pgmq.meta`: a first
    round trip lists them, the second is one UNION ALL over them (`pgmq_statement`), one aggregate
    per table, planned once per set of queues. A queue table holds only live messages (pgmq moves
    archived ones to `a_<queue>`): the cost follows the backlog.
    """
    s = quote_ident(p.schema_)
    return PresetQuery(p.query_name, "", (), ("visible", "invisible"), frozenset({"visible"}), None,
                       queues=tuple(p.queues), timeout=p.timeout,
                       probe=f"SELECT to_regclass({_literal(s + '.meta')}) IS NOT NULL AS ok",
                       requires=_requires("pgmq", "pgmq 1.0 or later (table pgmq.meta)", lambda f: bool(f["ok"])),
                       # the table as pgmq's own format_table_name names it: lower(prefix || '_' || queue_name)
                       # (pgmq-extension/sql/pgmq.sql), lowered by the server, quoted as its format('%I')
                       listing=f"SELECT queue_name::text, lower('q_' || queue_name) FROM {s}.meta ORDER BY 1",
                       expand=lambda tables: pgmq_statement(s, tables))


def pgmq_statement(schema: str, tables: Sequence[Sequence[Any]]) -> str:
    """One statement over the queue tables `(queue, table)` listed from pgmq.meta."""
    counts = " UNION ALL ".join(
        f"SELECT {_literal(queue)}::text AS queue, count(*) AS n, count(*) FILTER (WHERE vt <= now()) AS v, "
        f"min(enqueued_at) FILTER (WHERE vt <= now()) AS o FROM {schema}.{quote_ident(table)}"
        for queue, table in tables) or "SELECT NULL::text, 0::bigint, 0::bigint, NULL::timestamptz WHERE false"
    return (f"WITH c (queue, n, v, o) AS MATERIALIZED ({counts}) "
            "SELECT '' AS tenant, c.queue, s.state, CASE s.state WHEN 'visible' THEN c.v ELSE c.n - c.v END AS n, "
            "CASE s.state WHEN 'visible' THEN extract(epoch FROM c.o)::float8 END AS oldest, 0::bigint AS stale "
            "FROM c CROSS JOIN (VALUES ('visible'), ('invisible')) AS s(state)")


def _requires(library: str, needs: str, ok: Callable[[Mapping[str, Any]], bool]) -> Callable[[Mapping[str, Any]], None]:
    def check(facts: Mapping[str, Any]) -> None:
        if not ok(facts):
            raise UnsupportedVersion(f"{library}: the preset needs {needs}; found {_describe(facts)}")
    return check


def _describe(facts: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in facts.items() if k != "columns") or "nothing"


PG_BOSS_LIVE_FAILED = 46  # schema version 46 (pg-boss 12.38): LIVE_STATES with `failed`, its index job_i14
PG_BOSS_STATS_TTL = 3600.0  # dist/manager.js QUEUE_STATS_CACHE_TTL_SECONDS: getQueueStats() serves the cache


def pg_boss(p: PgBossPreset) -> PresetQuery:
    """pg-boss 10+ as its own getQueueStats() (src/plans.ts) splits the queued jobs.

    A queued job (state < 'active') is exactly one of blocked (a flow parent has not finished,
    pg-boss 12.19+), deferred (start_after ahead) or ready; ready keeps its state (created, retry)
    and its age is pg-boss's `readyOldestSeconds`: GREATEST(created_on, start_after). The live
    states are read as pg-boss's own `LIVE_STATES` (dist/plans.js: created, retry, active, failed;
    its index job_i14 holds exactly those): from schema version 46 (pg-boss 12.38) `failed` is live
    and the failed jobs still retained are `jobqueue_failed_jobs`, as getQueueStats().failedCount
    (dist/manager.js) answers: the count pg-boss's monitor cached in `queue.failed_count` while it is
    under an hour old (`monitor_on`), else counted through job_i14 (a queue retaining 500k failed
    jobs costs about a second: pg-boss's own monitor pays it too). Before 12.38 failed jobs have no
    index by queue and are counted only with `count_finished`.
    Completed and cancelled jobs are counted over `finished_window` per queue through job_i16 (name,
    completed_on), and in total only with `count_finished`.
    """
    s = quote_ident(p.schema_)
    probe = (f"SELECT (SELECT max(version::text::int) FROM {s}.version) AS version, "
             f"EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass({_literal(s + '.job')}) "
             "AND attname = 'blocked' AND NOT attisdropped) AS blocked")

    def resolve(facts: Mapping[str, Any]) -> PresetQuery:
        version = _version(facts.get("version"))
        if version is None or version < 21:
            raise UnsupportedVersion(f"pg-boss schema version {facts.get('version')} (pg-boss 9 or older): the preset "
                                     "needs pg-boss 10 or later (schema version >= 21)")
        blocked = "WHEN blocked THEN 'blocked' " if facts.get("blocked") else ""
        live_failed = version >= PG_BOSS_LIVE_FAILED
        parts = [  # per queue, so that the index range is (name, state), not every failed job's entry
            "SELECT '' AS tenant, q.name AS queue, l.state, l.n, l.oldest, 0::bigint AS stale "
            f"FROM {s}.queue q CROSS JOIN LATERAL (SELECT CASE WHEN state < 'active' THEN CASE "
            f"{blocked}WHEN start_after > now() THEN 'deferred' ELSE state::text END ELSE state::text END AS state, "
            "count(*) AS n, extract(epoch FROM min(GREATEST(created_on, start_after)))::float8 AS oldest "
            f"FROM {s}.job j WHERE j.name = q.name AND j.state IN ('created', 'retry', 'active') GROUP BY 1) l",
            f"SELECT '', name, '_queue', 0, NULL, 0 FROM {s}.queue",
        ]
        if live_failed:  # getQueueStats(): the monitor's cached count while under an hour old, else counted
            parts.append(f"SELECT '', q.name, 'failed', CASE WHEN q.monitor_on > now() - {_secs(PG_BOSS_STATS_TTL)} "
                         f"THEN q.failed_count ELSE (SELECT count(*) FROM {s}.job j WHERE j.name = q.name "
                         f"AND j.state = 'failed') END, NULL, 0 FROM {s}.queue q")
        if p.finished_window:
            parts += _window(  # per queue (OFFSET 0 keeps it so): a range of job_i16 (name, completed_on) each
                p.finished_window, "q.name", "j.state::text", "j.completed_on",
                lambda cond: f"FROM {s}.queue q CROSS JOIN LATERAL (SELECT j.state, j.completed_on FROM {s}.job j "
                f"WHERE j.name = q.name AND j.state IN ('completed', 'failed', 'cancelled') AND {cond} OFFSET 0) j")
        finished = ("completed", "cancelled") if live_failed else ("completed", "cancelled", "failed")
        if p.count_finished:
            parts.append(f"SELECT '', name, state::text, count(*), NULL, 0 FROM {s}.job "
                         f"WHERE state IN ({', '.join(repr(x) for x in finished)}) GROUP BY 2, 3")
        states = ("created", "retry", *(("blocked",) if facts.get("blocked") else ()), "deferred", "active",
                  *(("failed",) if live_failed else ()), *(finished if p.count_finished else ()))
        return PresetQuery(p.query_name, " UNION ALL ".join(parts), (), states, frozenset({"created", "retry"}),
                           frozenset({"failed"}) if live_failed or p.count_finished else None, queues=tuple(p.queues),
                           timeout=p.timeout,
                           window=p.finished_window, outcomes=("completed", "failed", "cancelled"))

    return _pending(p, probe, resolve)


def _pending(p: Any, probe: str, resolve: Callable[[Mapping[str, Any]], PresetQuery]) -> PresetQuery:
    """A preset whose statement depends on the library's schema: probed once before its first run."""
    return PresetQuery(p.query_name, "", (), (), frozenset(), None, queues=tuple(p.queues), timeout=p.timeout,
                       probe=probe, resolve=resolve)


def graphile_worker(p: GraphileWorkerPreset) -> PresetQuery:
    """graphile-worker 0.16+: a job is `ready` only when its get-jobs statement (dist/sql/getJobs.js)
    would take it now: unlocked (`is_available`: locked_at IS NULL and attempts < max_attempts), due,
    and in no named queue or in one whose lock is free (`_private_job_queues.is_available`).

    Otherwise, in this order: `locked` (a worker took it within the last 4 hours), `lock_expired`
    (locked longer ago: its worker is gone; a running worker's resetLockedAt, dist/sql/resetLockedAt.js,
    frees it after 4 h, and until then no worker takes it), `failed` (attempts exhausted), `retry` /
    `scheduled` (due in the future, after a failed attempt or not), `blocked` (due, behind a named
    queue that another job holds). Completed jobs are deleted, so the view holds only the backlog and
    permanently failed jobs. Busy workers are the distinct `locked_by` of jobs locked within the last
    4 hours; the library keeps no registry of idle workers.
    """
    s = quote_ident(p.schema_)
    queue = "j.task_identifier" if p.queue_by == "task" else "coalesce(j.queue_name, '')"
    sql = (
        f"SELECT '' AS tenant, {queue} AS queue, CASE "
        "WHEN j.locked_at > now() - interval '4 hours' THEN 'locked' "
        "WHEN j.locked_at IS NOT NULL THEN 'lock_expired' "
        "WHEN j.attempts >= j.max_attempts THEN 'failed' "
        "WHEN j.run_at > now() THEN CASE WHEN j.attempts > 0 THEN 'retry' ELSE 'scheduled' END "
        "WHEN NOT coalesce(q.is_available, true) THEN 'blocked' "
        "ELSE 'ready' END AS state, count(*) AS n, extract(epoch FROM min(j.run_at))::float8 AS oldest, "
        f"0::bigint AS stale FROM {s}.jobs j LEFT JOIN {s}._private_job_queues q ON q.queue_name = j.queue_name "
        "GROUP BY 1, 2, 3 "
        "UNION ALL SELECT '', '', '_workers_busy', count(DISTINCT locked_by), NULL, 0 "
        f"FROM {s}.jobs WHERE locked_at > now() - interval '4 hours'"
    )
    return PresetQuery(p.query_name, sql, (), ("ready", "scheduled", "retry", "blocked", "locked", "lock_expired",
                                               "failed"),
                       frozenset({"ready"}), frozenset({"failed"}), queues=tuple(p.queues), timeout=p.timeout,
                       workers=("busy",),
                       probe=f"SELECT to_regclass({_literal(s + '.jobs')}) IS NOT NULL AS ok",
                       requires=_requires("graphile-worker", "graphile-worker 0.16 or later (view "
                                          f"{p.schema_}.jobs)", lambda f: bool(f["ok"])))


def river(p: RiverPreset) -> PresetQuery:
    """River (migration 004+): the unfinished states through river_job_prioritized_fetching_index
    (state, queue, ...); `scheduled`/`retryable` jobs past due by `overdue_after` are `overdue` (River's
    leader stages them: they pile up when it dies); finished jobs over the window through
    river_job_state_and_finalized_at_index; the leader from `river_leader`.
    """
    s = quote_ident(p.schema_)
    probe = (f"SELECT (SELECT max(version) FROM {s}.river_migration m "
             "WHERE coalesce(to_jsonb(m)->>'line', 'main') = 'main') AS version")

    def resolve(facts: Mapping[str, Any]) -> PresetQuery:
        version = _version(facts.get("version"))
        if version is None or version < 4:
            raise UnsupportedVersion(f"River migration {facts.get('version')}: the preset needs River migration "
                                     "004 or later (`river migrate-up`)")
        live = "('available', 'pending', 'scheduled', 'running', 'retryable')"
        parts = [
            "SELECT '' AS tenant, queue, CASE WHEN state IN ('scheduled', 'retryable') AND scheduled_at < now() - "
            f"{_secs(p.overdue_after)} THEN 'overdue' ELSE state::text END AS state, count(*) AS n, "
            "extract(epoch FROM min(scheduled_at))::float8 AS oldest, 0::bigint AS stale "
            f"FROM {s}.river_job WHERE state IN {live} GROUP BY 2, 3",
            f"SELECT '', name, '_paused', (paused_at IS NOT NULL)::int, NULL, 0 FROM {s}.river_queue",
            f"SELECT '', '', '_scheduler', count(*), NULL, 0 FROM {s}.river_leader WHERE expires_at > now()",
        ]
        if p.finished_window:
            parts += _window(
                p.finished_window, "queue", "CASE state WHEN 'completed' THEN 'completed' WHEN 'discarded' THEN "
                "'failed' ELSE 'cancelled' END", "finalized_at",
                lambda cond: f"FROM {s}.river_job WHERE state IN ('completed', 'discarded', 'cancelled') AND {cond}")
        if p.count_finished:
            parts.append(f"SELECT '', queue, state::text, count(*), NULL, 0 FROM {s}.river_job "
                         "WHERE state IN ('completed', 'cancelled', 'discarded') GROUP BY 2, 3")
        finished = ("completed", "cancelled", "discarded") if p.count_finished else ()
        return PresetQuery(p.query_name, " UNION ALL ".join(parts), (),
                           ("available", "pending", "scheduled", "overdue", "running", "retryable", *finished),
                           frozenset({"available"}), frozenset({"discarded"}) if p.count_finished else None,
                           queues=tuple(p.queues), pausable=True, timeout=p.timeout, window=p.finished_window,
                           outcomes=("completed", "failed", "cancelled"), scheduler=True)

    return _pending(p, probe, resolve)


def oban(p: ObanPreset) -> PresetQuery:
    """Oban (migration 13+): the unfinished states through oban_jobs (state, queue, priority,
    scheduled_at, id); `scheduled`/`retryable` past due by `overdue_after` are `overdue` (the leader's
    Stager moves them); discarded and cancelled over the window through the (state, discarded_at) and
    (state, cancelled_at) indexes of migration 13. Oban indexes no completion time, so completed
    jobs are counted only with `count_finished`. Timestamps are UTC without a zone (the session is UTC).
    """
    s = quote_ident(p.schema_)
    probe = (f"SELECT obj_description({_literal(s + '.oban_jobs')}::regclass, 'pg_class') AS version, "
             f"enum_range(NULL::{s}.oban_job_state)::text[] AS states")

    def resolve(facts: Mapping[str, Any]) -> PresetQuery:
        version = _version(facts.get("version"))
        if version is None or version < 13:
            raise UnsupportedVersion(f"Oban migration {facts.get('version')}: the preset needs Oban migration 13 "
                                     "or later (`Oban.Migration.up(version: 13)`)")
        known = [x for x in ("available", "scheduled", "executing", "retryable", "suspended")
                 if x in (facts.get("states") or ())]
        live = "(" + ", ".join(f"'{x}'" for x in known) + ")"
        parts = [
            "SELECT '' AS tenant, queue, CASE WHEN state IN ('scheduled', 'retryable') AND scheduled_at < "
            f"timezone('UTC', now()) - {_secs(p.overdue_after)} THEN 'overdue' ELSE state::text END AS state, "
            "count(*) AS n, extract(epoch FROM min(scheduled_at))::float8 AS oldest, 0::bigint AS stale "
            f"FROM {s}.oban_jobs WHERE state IN {live} GROUP BY 2, 3",
            f"SELECT '', '', '_scheduler', count(*), NULL, 0 FROM {s}.oban_peers "
            "WHERE expires_at > timezone('UTC', now())",
        ]
        if p.finished_window:
            parts += _window(p.finished_window, "queue", "'failed'", "discarded_at",
                             lambda cond: f"FROM {s}.oban_jobs WHERE state = 'discarded' AND {cond}", utc=True)
            parts += _window(p.finished_window, "queue", "'cancelled'", "cancelled_at",
                             lambda cond: f"FROM {s}.oban_jobs WHERE state = 'cancelled' AND {cond}", utc=True)[:2]
        if p.count_finished:
            parts.append(f"SELECT '', queue, state::text, count(*), NULL, 0 FROM {s}.oban_jobs "
                         "WHERE state IN ('completed', 'discarded', 'cancelled') GROUP BY 2, 3")
        states = ("available", "scheduled", "overdue", "executing", "retryable",
                  *(("completed", "discarded", "cancelled") if p.count_finished else ()), "suspended")
        return PresetQuery(p.query_name, " UNION ALL ".join(parts), (), states, frozenset({"available"}),
                           frozenset({"discarded"}) if p.count_finished else None, queues=tuple(p.queues),
                           timeout=p.timeout, window=p.finished_window, outcomes=("failed", "cancelled"),
                           scheduler=True)

    return _pending(p, probe, resolve)


GOOD_JOB_COLUMNS = ("queue_name", "scheduled_at", "performed_at", "finished_at", "error", "created_at",
                    "executions_count", "locked_by_id", "serialized_params")
# good_job's params_execution_count (app/models/good_job/job.rb): ActiveJob's own `executions` in the
# serialized job, which counts the first run before a retry is enqueued; a value that is not a
# number reads as 0 (good_job's `::integer` cast would fail the whole statement)
GOOD_JOB_EXECUTIONS = ("(CASE WHEN serialized_params->>'executions' ~ '^[0-9]{1,9}$' "
                       "THEN (serialized_params->>'executions')::int ELSE 0 END)")


def good_job(p: GoodJobPreset) -> PresetQuery:
    """good_job (4.0+): its scopes (app/models/good_job/job.rb) over the unfinished jobs only: `scheduled`
    is due in the future with ActiveJob's `executions` < 2, `retried` with > 1 (ActiveJob has counted
    the first run before a retry is enqueued), `queued` is due, `running` is performed and not
    finished. Through the index ..._unfinished (queue_name, scheduled_at, id) WHERE finished_at IS
    NULL; finished over the window through
    index_good_jobs_jobs_on_finished_at_only; processes whose heartbeat (updated_at) is within
    good_job's EXPIRED_INTERVAL (5 min), busy when they lock an unfinished job.

    No `overdue`: good_job has no stager, a job is queued as soon as its scheduled_at passes.
    """
    s = quote_ident(p.schema_)
    probe = (f"SELECT to_regclass({_literal(s + '.good_job_processes')}) IS NOT NULL AS processes, "
             "(SELECT array_agg(attname::text) FROM pg_attribute WHERE attrelid = "
             f"to_regclass({_literal(s + '.good_jobs')}) AND attnum > 0 AND NOT attisdropped) AS columns")

    def resolve(facts: Mapping[str, Any]) -> PresetQuery:
        missing = [c for c in GOOD_JOB_COLUMNS if c not in (facts.get("columns") or ())]
        if missing or not facts.get("processes"):
            what = ("good_jobs lacks " + ", ".join(missing)) if missing else "no good_job_processes table"
            raise UnsupportedVersion(f"good_job: {what}: the preset needs good_job 4.0 or later "
                                     "(`rails g good_job:update` and migrate)")
        queue = "coalesce(queue_name, 'default')"
        parts = [
            f"SELECT '' AS tenant, {queue} AS queue, CASE WHEN performed_at IS NOT NULL THEN 'running' "
            "WHEN coalesce(scheduled_at, created_at) > timezone('UTC', now()) THEN CASE WHEN "
            f"{GOOD_JOB_EXECUTIONS} > 1 THEN 'retried' ELSE 'scheduled' END ELSE 'queued' END AS state, count(*) AS n, "
            "extract(epoch FROM min(coalesce(scheduled_at, created_at)))::float8 AS oldest, 0::bigint AS stale "
            f"FROM {s}.good_jobs WHERE finished_at IS NULL GROUP BY 2, 3",
            "SELECT '', '', '_workers_' || CASE WHEN EXISTS (SELECT 1 FROM "
            f"{s}.good_jobs j WHERE j.locked_by_id = p.id AND j.finished_at IS NULL) THEN 'busy' ELSE 'idle' END, "
            f"count(*), NULL, 0 FROM {s}.good_job_processes p "
            "WHERE p.updated_at > timezone('UTC', now()) - interval '5 minutes' GROUP BY 3",
        ]
        if p.finished_window:
            parts += _window(p.finished_window, queue, "CASE WHEN error IS NULL THEN 'completed' ELSE 'failed' END",
                             "finished_at", lambda cond: f"FROM {s}.good_jobs WHERE finished_at IS NOT NULL AND {cond}",
                             utc=True)
        if p.count_finished:
            parts.append(f"SELECT '', {queue}, CASE WHEN error IS NULL THEN 'succeeded' ELSE 'discarded' END, "
                         f"count(*), NULL, 0 FROM {s}.good_jobs WHERE finished_at IS NOT NULL GROUP BY 2, 3")
        states = ("queued", "scheduled", "retried", "running",
                  *(("succeeded", "discarded") if p.count_finished else ()))
        return PresetQuery(p.query_name, " UNION ALL ".join(parts), (), states, frozenset({"queued"}),
                           frozenset({"discarded"}) if p.count_finished else None, queues=tuple(p.queues),
                           timeout=p.timeout, window=p.finished_window, outcomes=("completed", "failed"),
                           workers=("busy", "idle"))

    return _pending(p, probe, resolve)


PROCRASTINATE_HEARTBEAT = 30  # s: get_stalled_jobs' seconds_since_heartbeat, the worker's stalled_worker_timeout


def procrastinate(p: ProcrastinatePreset) -> PresetQuery:
    """Procrastinate 3+: `todo` and `doing` jobs through its partial index procrastinate_jobs_id_lock_idx_v1
    (status IN todo, doing), split as the library itself decides:

    - `blocked`: a due `todo` job whose `lock` a `doing` job holds: procrastinate_fetch_job_v2
      (sql/schema.sql) rejects it until that job ends (found through procrastinate_jobs_lock_idx_v1);
    - `stalled`: a `doing` job of no worker or of a worker whose heartbeat is older than 30 s, as
      select_stalled_jobs_by_heartbeat (sql/queries.sql) and get_stalled_jobs' default define it;
    - `scheduled`: a `todo` job due in the future; `todo` and `doing` the rest.

    Depth is `todo`; the oldest ready job is the lowest id of a queue's due, unblocked `todo` jobs
    (ids follow defer order), its enqueue time its `deferred` event (or its scheduled_at when that is
    earlier). Workers: `procrastinate_workers` whose heartbeat is within 30 s, busy when a `doing`
    job names them. Procrastinate indexes no finish time: finished states are counted only with
    `count_finished` (a scan of the history).

    No `overdue`: a scheduled job is fetched by any worker once its time passes (no stager).
    """
    s = quote_ident(p.schema_)
    heartbeat = f"now() - interval '{PROCRASTINATE_HEARTBEAT} seconds'"
    live = f"{s}.procrastinate_jobs j WHERE j.status IN ('todo', 'doing')"
    held = (f"j.lock IS NOT NULL AND EXISTS (SELECT 1 FROM {s}.procrastinate_jobs d WHERE d.lock = j.lock "
            "AND d.status = 'doing')")
    stalled = (f"j.worker_id IS NULL OR EXISTS (SELECT 1 FROM {s}.procrastinate_workers w WHERE w.id = j.worker_id "
               f"AND w.last_heartbeat < {heartbeat})")
    parts = [  # one pass over the backlog: the `todo` group is exactly the due, unblocked jobs
        "SELECT '' AS tenant, g.queue, g.state, g.n, CASE WHEN g.state = 'todo' THEN extract(epoch FROM "
        f"least(g.scheduled, (SELECT min(e.at) FROM {s}.procrastinate_events e WHERE e.job_id = g.first "
        "AND e.type = 'deferred')))::float8 END AS oldest, 0::bigint AS stale FROM ("
        "SELECT j.queue_name AS queue, CASE WHEN j.status = 'todo' AND j.scheduled_at > now() "
        f"THEN 'scheduled' WHEN j.status = 'todo' AND ({held}) THEN 'blocked' "
        f"WHEN j.status = 'doing' AND ({stalled}) THEN 'stalled' ELSE j.status::text END AS state, count(*) AS n, "
        "min(j.id) FILTER (WHERE j.scheduled_at IS NULL) AS first, min(j.scheduled_at) AS scheduled "
        f"FROM {live} GROUP BY 1, 2) g",
        "SELECT '', '', '_workers_' || CASE WHEN EXISTS (SELECT 1 FROM "
        f"{s}.procrastinate_jobs j WHERE j.worker_id = w.id AND j.status = 'doing') THEN 'busy' ELSE 'idle' END, "
        f"count(*), NULL, 0 FROM {s}.procrastinate_workers w WHERE w.last_heartbeat >= {heartbeat} GROUP BY 3",
    ]
    if p.count_finished:
        parts.append(f"SELECT '', queue_name, status::text, count(*), NULL, 0 FROM {s}.procrastinate_jobs "
                     "WHERE status NOT IN ('todo', 'doing') GROUP BY 2, 3")
    finished = ("succeeded", "failed", "cancelled", "aborted") if p.count_finished else ()
    return PresetQuery(p.query_name, " UNION ALL ".join(parts), (),
                       ("todo", "scheduled", "blocked", "doing", "stalled", *finished),
                       frozenset({"todo"}), frozenset({"failed"}) if p.count_finished else None,
                       queues=tuple(p.queues), timeout=p.timeout, workers=("busy", "idle"),
                       probe=f"SELECT to_regclass({_literal(s + '.procrastinate_workers')}) IS NOT NULL AS ok",
                       requires=_requires("procrastinate", "procrastinate 3.0 or later (table "
                                          "procrastinate_workers)", lambda f: bool(f["ok"])))


SOLID_QUEUE_TABLES = ("jobs", "ready_executions", "scheduled_executions", "claimed_executions", "blocked_executions",
                      "failed_executions", "pauses", "processes")


def solid_queue(p: SolidQueuePreset) -> PresetQuery:
    """Solid Queue 1.0+: one count per execution table (all backlog: finished jobs leave them);
    scheduled executions past due by `overdue_after` are `overdue` (a dispatcher moves them; the
    scheduled_at index index_solid_queue_dispatch_all finds them); workers from
    `solid_queue_processes` (kind Worker) whose heartbeat is within the default
    process_alive_threshold (5 min), busy when they hold a claimed execution, their capacity (the
    `thread_pool_size` of their metadata) and busy slots (their claimed executions); a claimed
    execution whose process is gone or past process_alive_threshold is `orphaned` (Solid Queue's own
    ClaimedExecution.orphaned scope; the supervisor prunes the process and fails or releases its
    executions: no worker runs them now); live dispatchers;
    finished jobs over the window through index_solid_queue_jobs_on_finished_at, failed ones by
    their failed execution's created_at. Executions find their job's queue by primary key.
    """
    s = quote_ident(p.schema_)

    def job_queue(alias: str) -> str:
        """The queue of an execution's job: one primary-key lookup per execution (a join would let the
        planner hash the whole jobs table, finished history included)."""
        return f"(SELECT j.queue_name FROM {s}.solid_queue_jobs j WHERE j.id = {alias}.job_id)"

    alive = "last_heartbeat_at > timezone('UTC', now()) - interval '5 minutes'"
    overdue = f"scheduled_at < timezone('UTC', now()) - {_secs(p.overdue_after)}"
    parts = [
        "SELECT '' AS tenant, queue_name AS queue, 'ready' AS state, count(*) AS n, "
        "extract(epoch FROM min(created_at))::float8 AS oldest, 0::bigint AS stale "
        f"FROM {s}.solid_queue_ready_executions GROUP BY 2",
        f"SELECT '', queue_name, CASE WHEN {overdue} THEN 'overdue' ELSE 'scheduled' END, count(*), NULL, 0 "
        f"FROM {s}.solid_queue_scheduled_executions GROUP BY 2, 3",
        f"SELECT '', queue_name, 'blocked', count(*), NULL, 0 FROM {s}.solid_queue_blocked_executions GROUP BY 2",
        f"SELECT '', {job_queue('c')}, CASE WHEN EXISTS (SELECT 1 FROM {s}.solid_queue_processes p "
        f"WHERE p.id = c.process_id AND p.{alive}) THEN 'claimed' ELSE 'orphaned' END, count(*), NULL, 0 "
        f"FROM {s}.solid_queue_claimed_executions c GROUP BY 2, 3",
        f"SELECT '', {job_queue('f')}, 'failed', count(*), NULL, 0 FROM {s}.solid_queue_failed_executions f "
        "GROUP BY 2",
        f"SELECT '', queue_name, '_paused', 1, NULL, 0 FROM {s}.solid_queue_pauses",
        "SELECT '', '', '_workers_' || CASE WHEN EXISTS (SELECT 1 FROM "
        f"{s}.solid_queue_claimed_executions c WHERE c.process_id = p.id) THEN 'busy' ELSE 'idle' END, count(*), "
        f"NULL, 0 FROM {s}.solid_queue_processes p WHERE kind = 'Worker' AND {alive} GROUP BY 3",
        f"SELECT '', '', '_scheduler', count(*), NULL, 0 FROM {s}.solid_queue_processes "
        f"WHERE kind = 'Dispatcher' AND {alive}",
        # SolidQueue::Worker#metadata: {"queues": ..., "thread_pool_size": n} (lib/solid_queue/worker.rb),
        # read without a cast that one malformed row would fail: a live worker whose metadata names no
        # thread_pool_size is counted as malformed (jobqueue_malformed_items)
        "SELECT '', '', x.state, x.n, NULL, 0 FROM (SELECT sum(w.size) AS capacity, count(*) FILTER (WHERE w.size "
        "IS NULL) AS malformed FROM (SELECT substring(metadata FROM "
        "'\"thread_pool_size\"\\s*:\\s*([0-9]{1,9})\\s*[,}]')::int AS size "
        f"FROM {s}.solid_queue_processes WHERE kind = 'Worker' AND {alive}) w) a "
        "CROSS JOIN LATERAL (VALUES ('_capacity', a.capacity), ('_malformed', a.malformed)) AS x(state, n)",
        f"SELECT '', '', '_busy_slots', count(*), NULL, 0 FROM {s}.solid_queue_claimed_executions c "
        f"JOIN {s}.solid_queue_processes p ON p.id = c.process_id WHERE p.kind = 'Worker' AND p.{alive}",
    ]
    if p.finished_window:
        parts += _window(p.finished_window, "queue_name", "'completed'", "finished_at",
                         lambda cond: f"FROM {s}.solid_queue_jobs WHERE {cond}", utc=True)
        parts += _window(p.finished_window, job_queue("f"), "'failed'", "f.created_at",
                         lambda cond: f"FROM {s}.solid_queue_failed_executions f WHERE {cond}", utc=True)[:2]
    tables = ", ".join(f"to_regclass({_literal(f'{s}.solid_queue_{t}')}) IS NOT NULL" for t in SOLID_QUEUE_TABLES)
    return PresetQuery(p.query_name, " UNION ALL ".join(parts), (),
                       ("ready", "scheduled", "overdue", "claimed", "orphaned", "blocked", "failed"),
                       frozenset({"ready"}), frozenset({"failed"}), queues=tuple(p.queues), pausable=True,
                       timeout=p.timeout, window=p.finished_window, outcomes=("completed", "failed"),
                       workers=("busy", "idle"), scheduler=True,
                       probe=f"SELECT ARRAY[{tables}] AS tables",
                       requires=_requires("Solid Queue", "Solid Queue 1.0 or later (tables solid_queue_"
                                          + ", solid_queue_".join(SOLID_QUEUE_TABLES) + ")",
                                          lambda f: all(f["tables"])))


_BUILDERS: dict[str, Callable[[Any], PresetQuery]] = {
    "generic": generic, "pgmq": pgmq, "pg-boss": pg_boss, "graphile-worker": graphile_worker, "river": river,
    "oban": oban, "good_job": good_job, "procrastinate": procrastinate, "solid_queue": solid_queue,
}


def build(preset: AnyPreset) -> PresetQuery:
    """The statement of a configured preset; a library preset's also counts its never-analyzed tables."""
    query = _BUILDERS[preset.preset](preset)
    if isinstance(preset, GenericPreset):
        return query
    return _with_statistics(query, statistics_tables(preset))


def _with_statistics(query: PresetQuery, tables: list[str]) -> PresetQuery:
    """One `_unanalyzed` row more (jobqueue_postgres_tables_unanalyzed), in the same round trip."""
    if query.resolve is not None:
        resolve = query.resolve
        return replace(query, resolve=lambda facts: _with_statistics(resolve(facts), tables))
    row = f"SELECT '', '', '_unanalyzed', count(*), NULL, 0 FROM ({unanalyzed(tables)}) u"
    if query.expand is not None:
        expand = query.expand
        return replace(query, expand=lambda listed: f"{expand(listed)} UNION ALL {row}", statistics=True)
    return replace(query, sql=f"{query.sql} UNION ALL {row}", statistics=True)


_TABLES = {  # relations each library preset reads, in its schema (what `doctor` checks SELECT on)
    "pgmq": ("meta",),  # and each queue's q_<name> table (listed from meta by the collection)
    "pg-boss": ("version", "queue", "job"), "graphile-worker": ("jobs", "_private_job_queues"),
    "river": ("river_migration", "river_job", "river_queue", "river_leader"),
    "oban": ("oban_jobs", "oban_peers"), "good_job": ("good_jobs", "good_job_processes"),
    "procrastinate": ("procrastinate_jobs", "procrastinate_events", "procrastinate_workers"),
    "solid_queue": tuple(f"solid_queue_{t}" for t in SOLID_QUEUE_TABLES),
}


def reads(preset: AnyPreset) -> list[str]:
    """The tables and views the preset's statements read, quoted as SQL: the privileges it needs."""
    if isinstance(preset, GenericPreset):
        return [quote_ident(preset.table)]
    s = quote_ident(preset.schema_)
    return [f'{s}."{t}"' for t in _TABLES[preset.preset]]


STATISTICS_MIN_BYTES = 8 * 1024 * 1024  # below this a plan made without statistics still runs fast


def statistics_tables(preset: AnyPreset) -> list[str]:
    """The tables whose statistics the preset's plans depend on: what it reads, a view's job table too."""
    tables = reads(preset)
    if isinstance(preset, GraphileWorkerPreset):
        tables.append(f"{quote_ident(preset.schema_)}._private_jobs")
    return tables


def unanalyzed(tables: Sequence[str]) -> str:
    """SQL: the tables (each partition of a partitioned one) of at least 8 MB that have never been
    analyzed (pg_class.reltuples < 0, PostgreSQL 14+: a fresh restore, autovacuum off). Their plans
    guess row counts and may scan the whole history; `ANALYZE` is the fix."""
    regs = ", ".join(f"to_regclass({_literal(t)})" for t in tables)
    return (f"SELECT c.oid::regclass::text AS relation FROM unnest(ARRAY[{regs}]::regclass[]) AS r(oid) "
            "LEFT JOIN LATERAL pg_partition_tree(r.oid) AS t ON true "
            "JOIN pg_class c ON c.oid = coalesce(t.relid, r.oid) "
            f"WHERE coalesce(t.isleaf, true) AND c.relkind = 'r' AND c.reltuples < 0 "
            f"AND pg_relation_size(c.oid) >= {STATISTICS_MIN_BYTES}")


def in_shard(tenant: str, shard: tuple[int, int]) -> bool:
    """This replica's share of the tenants (crc32 of the id modulo N), as the Redis source splits them."""
    index, total = shard
    return total == 1 or not tenant or zlib.crc32(tenant.encode()) % total == index


@dataclass(slots=True)
class FinishedWindow:
    """One preset's finished window, read incrementally: counts by bucket of window/60 s (1 min of the
    default hour) per (tenant, queue, outcome), kept between cycles with their running totals.

    Each cycle reads only jobs finished since the previous read's `now()` less WINDOW_OVERLAP
    buckets (re-read and replacing those buckets, so a job whose transaction committed after that
    read, with a finish time inside the overlap, is counted), plus the window's first, partial
    bucket whole; buckets before it are dropped: at most 60 buckets, each of at most one count per
    (queue, outcome). The first cycle, and the first after a failure (`reset`), reads the whole
    window. What this cannot see, a full count would: a job committed later than the overlap after
    its finish time is missed; one deleted or archived after it was read stays counted until its
    bucket leaves the window. The work per cycle follows the rows read, not the buckets kept.
    """

    seconds: float
    buckets: dict[float, dict[tuple[str, str, str], int]] = field(default_factory=dict)  # start -> counts
    totals: dict[tuple[str, str, str], int] = field(default_factory=dict)  # the sums of `buckets`
    read_at: float | None = None  # the database's now() at the last read, Unix seconds

    def since(self) -> float:
        """The statement's `$1`: the start of the first bucket to re-read (0: the whole window)."""
        if self.read_at is None:
            return 0.0
        width = self.seconds / WINDOW_BUCKETS
        return float(math.floor((self.read_at - WINDOW_OVERLAP * width) / width) * width)

    def reset(self) -> None:
        self.buckets.clear()
        self.totals.clear()
        self.read_at = None

    def _add(self, at: float, key: tuple[str, str, str], n: int) -> None:
        counts = self.buckets.setdefault(at, {})
        counts[key] = counts.get(key, 0) + n
        self.totals[key] = self.totals.get(key, 0) + n

    def _drop(self, at: float) -> None:
        for key, n in self.buckets.pop(at).items():
            left = self.totals[key] - n
            if left:
                self.totals[key] = left
            else:
                del self.totals[key]

    def fold(self, rows: Iterable[Sequence[Any]], since: float) -> list[tuple[Any, ...]]:
        """The statement's rows with its bucket rows merged into the kept ones and replaced by one
        `_done_<outcome>` row per (tenant, queue, outcome): what fold_rows and fold_flow read."""
        out: list[tuple[Any, ...]] = []
        fresh: list[tuple[float, tuple[str, str, str], int]] = []
        first: dict[tuple[str, str, str], int] = {}
        now = edge = None
        for row in rows:
            state = row[2]
            if not state.startswith("_"):
                out.append(tuple(row))
            elif state.startswith("_done_"):
                fresh.append((row[4], (row[0] or "", row[1] or "", state), int(row[3])))
            elif state.startswith("_first_"):
                key = (row[0] or "", row[1] or "", "_done_" + state[7:])
                first[key] = first.get(key, 0) + int(row[3])
            elif state == "_window_now":
                now = row[4]
            elif state == "_window_edge":
                edge = row[4]
            else:
                out.append(tuple(row))
        if now is None or edge is None:  # not a windowed statement: nothing to keep
            return out
        start = max(since, edge)
        for at in [at for at in self.buckets if at < edge or at >= start]:
            self._drop(at)
        for at, key, n in fresh:
            self._add(at, key, n)
        self.read_at = now
        totals = dict(self.totals)
        for key, n in first.items():
            totals[key] = totals.get(key, 0) + n
        out += [(tenant, queue, state, n, None, 0) for (tenant, queue, state), n in totals.items()]
        return out


SOURCE_WIDE = ("_workers_", "_scheduler", "_capacity", "_busy_slots", "_malformed", "_unanalyzed")


def fold_rows(q: PresetQuery, rows: Iterable[Sequence[Any]], shard: tuple[int, int] = (0, 1)) -> list[QueueStats]:
    """Rows `(tenant, queue, state, n, oldest, stale)` -> one QueueStats per (tenant, queue).

    A queue seen only in the finished window still gets its series (depth 0): it exists, and it is
    the same one QueueStats as the queue's backlog rows. `completed_last_hour` (seed 003) is the
    window's `_done_completed` when the window is exactly 3600 s and the library tells completions
    apart; otherwise None: another window is not "the last hour", and a library without a
    finished-at index (Oban, procrastinate, graphile-worker) does not know.
    """
    hour = q.window == HOUR and "completed" in q.outcomes
    # per (tenant, queue): [counts by state, oldest, stale, paused, completed]; the loops are inlined
    # (500 queues with their finished windows are thousands of rows every cycle)
    groups: dict[tuple[str, str], list[Any]] = {("", queue): [{}, None, 0, None, 0] for queue in q.queues}
    waiting, processing = q.waiting, q.processing
    split = shard[1] > 1
    for tenant, queue, state, n, oldest, stale in rows:
        key = (tenant or "", queue or "")
        if split and not in_shard(key[0], shard):
            continue
        pseudo = state[:1] == "_"  # a pseudo-state: of a queue (paused, its window, registered) or of none
        if pseudo and state.startswith(SOURCE_WIDE):
            continue
        g = groups.get(key)
        if g is None:
            g = groups[key] = [{}, None, 0, None, 0]
        if pseudo:
            if state == "_paused":
                g[3] = bool(n)
            elif state == "_done_completed":
                g[4] += int(n)
            continue
        counts = g[0]
        counts[state] = counts.get(state, 0) + int(n)
        if state in waiting and oldest is not None:
            g[1] = oldest if g[1] is None else min(g[1], oldest)
        if state in processing and stale:
            g[2] += int(stale)
    known = [s for s in q.states if s != "stale"]
    every = set(q.states)
    default_paused = False if q.pausable else None
    out = []
    for (tenant, queue), (counts, oldest, stale, paused, completed) in groups.items():
        states = [(s, counts.get(s, 0)) for s in known]
        if not every.issuperset(counts):
            states += sorted((s, n) for s, n in counts.items() if s not in every)
        if q.stale:
            states.append(("stale", stale))
        depth = sum(counts.get(s, 0) for s in waiting)
        failed = sum(counts.get(s, 0) for s in q.failed) if q.failed is not None else None
        out.append(QueueStats(queue, depth, tenant, float(oldest) if depth and oldest is not None else None,
                              tuple(states), failed, None, paused if paused is not None else default_paused,
                              completed if hour else None))
    out.sort(key=lambda s: (s.tenant, s.queue))
    return out


def fold_flow(q: PresetQuery, rows: Iterable[Sequence[Any]], queues: Iterable[QueueStats]) -> Flow:
    """The pseudo rows of a preset: live workers by state, live schedulers, and the finished window
    of every queue of `queues` (0 for an outcome a queue had none of)."""
    workers = dict.fromkeys(q.workers, 0)
    scheduler = 0 if q.scheduler else None
    slots: dict[str, int] = {}
    done: dict[tuple[str, str], dict[str, int]] = {}
    for tenant, queue, state, n, _oldest, _stale in rows:
        if state[:1] != "_":
            continue
        if state.startswith("_workers_"):
            workers[state[9:]] = workers.get(state[9:], 0) + int(n)
        elif state == "_scheduler" and scheduler is not None:
            scheduler += int(n)
        elif state in ("_capacity", "_busy_slots", "_malformed", "_unanalyzed"):
            slots[state] = slots.get(state, 0) + int(n or 0)
        elif state.startswith("_done_"):
            counts = done.setdefault((tenant or "", queue or ""), {})
            counts[state[6:]] = counts.get(state[6:], 0) + int(n)
    finished = []
    if q.window:
        for s in queues:
            counts = done.get((s.tenant, s.queue), {})
            finished.append({"query": q.name, "tenant": s.tenant, "queue": s.queue, "window_seconds": q.window,
                             **{o: counts.get(o, 0) for o in q.outcomes}})
    return Flow(workers, scheduler, finished, slots.get("_capacity"), slots.get("_busy_slots"),
                slots.get("_malformed", 0), slots.get("_unanalyzed", 0) if q.statistics else None)


def fold_pivot(q: PresetQuery, rows: Iterable[Sequence[Any]], shard: tuple[int, int] = (0, 1)) -> list[QueueStats]:
    """Rows `(tenant, queue, oldest, stale, depth, failed, count per state...)` of the generic preset.

    The hot loop at 10k tenants: the database already summed depth and failures, so this only
    pairs counts with state names.
    """
    names = tuple(s for s in q.states if s != "stale")
    split, stale = shard[1] > 1, q.stale
    out: list[QueueStats] = []
    append = out.append
    seen: set[str] = set()
    for row in rows:
        tenant = row[0] or ""
        if split and not in_shard(tenant, shard):
            continue
        states = tuple(zip(names, row[6:], strict=True))
        if stale:
            states += (("stale", row[3]),)
        depth = row[4]
        append(QueueStats(row[1] or "", depth, tenant, row[2] if depth else None, states, row[5]))
        if not tenant:
            seen.add(row[1] or "")
    zero = tuple((s, 0) for s in q.states)
    failed_zero = 0 if q.failed is not None else None
    extra = [QueueStats(name, 0, "", None, zero, failed_zero) for name in q.queues if name not in seen]
    return sorted(out + extra, key=lambda s: (s.tenant, s.queue)) if extra else out
