"""The SQL of each Postgres queue preset and the pure function that folds its rows into QueueStats.

Every preset is ONE grouped statement per cycle returning rows of
`(tenant text, queue text, state text, n bigint, oldest float8, stale bigint)`: `oldest` is the
earliest enqueue (or ready) time of the group in Unix seconds, `stale` counts rows of a processing
state not updated within `stale_after`. Two pseudo-states carry queue facts: `_queue` registers a
queue that has no job (depth 0), `_paused` says whether a queue is paused (`n` 1 or 0). pgmq is the
exception: `pgmq.metrics_all()` already aggregates, and `fold_pgmq` reads its own columns.
Table and column names are quoted identifiers from the config; status values travel as parameters.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
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
    kind: str = "rows"  # "rows" or "pgmq"
    timeout: float | None = None


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


def pgmq(p: PgmqPreset) -> PresetQuery:
    """`pgmq.metrics_all()`: queue_length, queue_visible_length (1.5+), oldest_msg_age_sec, scrape_time."""
    return PresetQuery(p.query_name, f"SELECT * FROM {quote_ident(p.schema_)}.metrics_all()", (),
                       ("visible", "invisible"), frozenset({"visible"}), None, queues=tuple(p.queues),
                       kind="pgmq", timeout=p.timeout)


def pg_boss(p: PgBossPreset) -> PresetQuery:
    """pg-boss v10+: `created`/`retry` jobs whose start_after has passed are ready; later ones deferred."""
    s = quote_ident(p.schema_)
    sql = (
        "SELECT '' AS tenant, name AS queue, CASE WHEN state < 'active' AND start_after > now() THEN 'deferred' "
        "ELSE state::text END AS state, count(*) AS n, extract(epoch FROM min(created_on))::float8 AS oldest, "
        f"0::bigint AS stale FROM {s}.job GROUP BY 1, 2, 3 "
        f"UNION ALL SELECT '', name, '_queue', 0, NULL, 0 FROM {s}.queue"
    )
    return PresetQuery(p.query_name, sql, (), ("created", "retry", "deferred", "active", "completed", "cancelled",
                                                "failed"), frozenset({"created", "retry"}), frozenset({"failed"}),
                       queues=tuple(p.queues), timeout=p.timeout)


def graphile_worker(p: GraphileWorkerPreset) -> PresetQuery:
    """graphile-worker: locked first (a running last attempt is not failed), then failed, future, ready."""
    queue = "task_identifier" if p.queue_by == "task" else "coalesce(queue_name, '')"
    sql = (
        f"SELECT '' AS tenant, {queue} AS queue, CASE "
        "WHEN locked_at IS NOT NULL AND locked_at > now() - interval '4 hours' THEN 'locked' "
        "WHEN attempts >= max_attempts THEN 'failed' "
        "WHEN run_at > now() THEN CASE WHEN attempts > 0 THEN 'retry' ELSE 'scheduled' END "
        "ELSE 'ready' END AS state, count(*) AS n, extract(epoch FROM min(run_at))::float8 AS oldest, "
        f"0::bigint AS stale FROM {quote_ident(p.schema_)}.jobs GROUP BY 1, 2, 3"
    )
    return PresetQuery(p.query_name, sql, (), ("ready", "scheduled", "retry", "locked", "failed"),
                       frozenset({"ready"}), frozenset({"failed"}), queues=tuple(p.queues), timeout=p.timeout)


def river(p: RiverPreset) -> PresetQuery:
    """River: `available` is ready (oldest by scheduled_at); `discarded` exhausted its attempts."""
    s = quote_ident(p.schema_)
    sql = (
        "SELECT '' AS tenant, queue, state::text AS state, count(*) AS n, "
        "extract(epoch FROM min(scheduled_at))::float8 AS oldest, 0::bigint AS stale "
        f"FROM {s}.river_job GROUP BY 1, 2, 3 "
        f"UNION ALL SELECT '', name, '_paused', (paused_at IS NOT NULL)::int, NULL, 0 FROM {s}.river_queue"
    )
    return PresetQuery(p.query_name, sql, (), ("available", "pending", "scheduled", "running", "retryable",
                                                "completed", "cancelled", "discarded"),
                       frozenset({"available"}), frozenset({"discarded"}), queues=tuple(p.queues), pausable=True,
                       timeout=p.timeout)


def oban(p: ObanPreset) -> PresetQuery:
    """Oban: `available` is ready (oldest by scheduled_at, UTC); `discarded` exhausted its attempts."""
    sql = (
        "SELECT '' AS tenant, queue, state::text AS state, count(*) AS n, "
        "extract(epoch FROM min(scheduled_at))::float8 AS oldest, 0::bigint AS stale "
        f"FROM {quote_ident(p.schema_)}.oban_jobs GROUP BY 1, 2, 3"
    )
    return PresetQuery(p.query_name, sql, (), ("available", "scheduled", "executing", "retryable", "completed",
                                                "discarded", "cancelled", "suspended"),
                       frozenset({"available"}), frozenset({"discarded"}), queues=tuple(p.queues), timeout=p.timeout)


def good_job(p: GoodJobPreset) -> PresetQuery:
    """good_job: the states of its scopes; oldest queued by scheduled_at, else created_at."""
    sql = (
        "SELECT '' AS tenant, coalesce(queue_name, 'default') AS queue, CASE "
        "WHEN finished_at IS NOT NULL THEN CASE WHEN error IS NULL THEN 'succeeded' ELSE 'discarded' END "
        "WHEN performed_at IS NOT NULL THEN 'running' "
        "WHEN scheduled_at > now() THEN CASE WHEN coalesce(executions_count, 0) > 0 THEN 'retried' "
        "ELSE 'scheduled' END ELSE 'queued' END AS state, count(*) AS n, "
        "extract(epoch FROM min(coalesce(scheduled_at, created_at)))::float8 AS oldest, 0::bigint AS stale "
        f"FROM {quote_ident(p.schema_)}.good_jobs GROUP BY 1, 2, 3"
    )
    return PresetQuery(p.query_name, sql, (), ("queued", "scheduled", "retried", "running", "succeeded", "discarded"),
                       frozenset({"queued"}), frozenset({"discarded"}), queues=tuple(p.queues), timeout=p.timeout)


def procrastinate(p: ProcrastinatePreset) -> PresetQuery:
    """Procrastinate: `todo` due now is ready; its enqueue time is the `deferred` event (or scheduled_at)."""
    s = quote_ident(p.schema_)
    sql = (
        "WITH counts AS (SELECT queue_name, CASE WHEN status = 'todo' AND scheduled_at > now() THEN 'scheduled' "
        f"ELSE status::text END AS state, count(*) AS n FROM {s}.procrastinate_jobs GROUP BY 1, 2), "
        "oldest AS (SELECT j.queue_name, min(coalesce(j.scheduled_at, e.at)) AS at "
        f"FROM {s}.procrastinate_jobs j LEFT JOIN {s}.procrastinate_events e "
        "ON e.job_id = j.id AND e.type = 'deferred' "
        "WHERE j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now()) GROUP BY 1) "
        "SELECT '' AS tenant, c.queue_name AS queue, c.state, c.n, "
        "CASE WHEN c.state = 'todo' THEN extract(epoch FROM o.at)::float8 END AS oldest, 0::bigint AS stale "
        "FROM counts c LEFT JOIN oldest o USING (queue_name)"
    )
    return PresetQuery(p.query_name, sql, (), ("todo", "scheduled", "doing", "succeeded", "failed", "cancelled",
                                                "aborted"),
                       frozenset({"todo"}), frozenset({"failed"}), queues=tuple(p.queues), timeout=p.timeout)


def solid_queue(p: SolidQueuePreset) -> PresetQuery:
    """Solid Queue: one count per execution table (claimed and failed joined to their jobs' queue)."""
    s = quote_ident(p.schema_)
    sql = (
        "SELECT '' AS tenant, queue_name AS queue, 'ready' AS state, count(*) AS n, "
        f"extract(epoch FROM min(created_at))::float8 AS oldest, 0::bigint AS stale "
        f"FROM {s}.solid_queue_ready_executions GROUP BY 2 "
        f"UNION ALL SELECT '', queue_name, 'scheduled', count(*), NULL, 0 FROM {s}.solid_queue_scheduled_executions "
        "GROUP BY 2 "
        f"UNION ALL SELECT '', queue_name, 'blocked', count(*), NULL, 0 FROM {s}.solid_queue_blocked_executions "
        "GROUP BY 2 "
        f"UNION ALL SELECT '', j.queue_name, 'claimed', count(*), NULL, 0 FROM {s}.solid_queue_claimed_executions c "
        f"JOIN {s}.solid_queue_jobs j ON j.id = c.job_id GROUP BY 2 "
        f"UNION ALL SELECT '', j.queue_name, 'failed', count(*), NULL, 0 FROM {s}.solid_queue_failed_executions f "
        f"JOIN {s}.solid_queue_jobs j ON j.id = f.job_id GROUP BY 2 "
        f"UNION ALL SELECT '', queue_name, '_paused', 1, NULL, 0 FROM {s}.solid_queue_pauses"
    )
    return PresetQuery(p.query_name, sql, (), ("ready", "scheduled", "claimed", "blocked", "failed"),
                       frozenset({"ready"}), frozenset({"failed"}), queues=tuple(p.queues), pausable=True,
                       timeout=p.timeout)


_BUILDERS: dict[str, Callable[[Any], PresetQuery]] = {
    "generic": generic, "pgmq": pgmq, "pg-boss": pg_boss, "graphile-worker": graphile_worker, "river": river,
    "oban": oban, "good_job": good_job, "procrastinate": procrastinate, "solid_queue": solid_queue,
}


def build(preset: AnyPreset) -> PresetQuery:
    """The statement of a configured preset."""
    return _BUILDERS[preset.preset](preset)


def in_shard(tenant: str, shard: tuple[int, int]) -> bool:
    """This replica's share of the tenants (crc32 of the id modulo N), as the Redis source splits them."""
    index, total = shard
    return total == 1 or not tenant or zlib.crc32(tenant.encode()) % total == index


def fold_rows(q: PresetQuery, rows: Iterable[Sequence[Any]], shard: tuple[int, int] = (0, 1)) -> list[QueueStats]:
    """Rows `(tenant, queue, state, n, oldest, stale)` -> one QueueStats per (tenant, queue)."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}

    def group(tenant: str, queue: str) -> dict[str, Any]:
        g = groups.get((tenant, queue))
        if g is None:
            g = groups[(tenant, queue)] = {"states": {}, "oldest": None, "stale": 0, "paused": None}
        return g

    for queue in q.queues:
        group("", queue)
    for tenant, queue, state, n, oldest, stale in rows:
        tenant, queue = tenant or "", queue or ""
        if not in_shard(tenant, shard):
            continue
        g = group(tenant, queue)
        if state == "_queue":
            continue
        if state == "_paused":
            g["paused"] = bool(n)
            continue
        g["states"][state] = g["states"].get(state, 0) + int(n)
        if state in q.waiting and n and oldest is not None:
            g["oldest"] = oldest if g["oldest"] is None else min(g["oldest"], oldest)
        if state in q.processing and stale:
            g["stale"] += int(stale)
    out = []
    for (tenant, queue), g in groups.items():
        counts: dict[str, int] = g["states"]
        states = [(s, counts.get(s, 0)) for s in q.states if s != "stale"]
        states += sorted((s, n) for s, n in counts.items() if s not in q.states)
        if q.stale:
            states.append(("stale", g["stale"]))
        depth = sum(counts.get(s, 0) for s in q.waiting)
        failed = sum(counts.get(s, 0) for s in q.failed) if q.failed is not None else None
        paused = g["paused"] if g["paused"] is not None else (False if q.pausable else None)
        out.append(QueueStats(queue, depth, tenant, float(g["oldest"]) if depth and g["oldest"] is not None
                              else None, tuple(states), failed, None, paused))
    out.sort(key=lambda s: (s.tenant, s.queue))
    return out


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


def fold_pgmq(q: PresetQuery, rows: Iterable[Mapping[str, Any]]) -> list[QueueStats]:
    """`pgmq.metrics_all()` rows -> QueueStats; depth is the visible count (all messages before 1.5)."""
    out: dict[str, QueueStats] = {name: QueueStats(name, 0, states=(("visible", 0), ("invisible", 0)))
                                  for name in q.queues}
    for row in rows:
        name = row["queue_name"]
        length = int(row["queue_length"] or 0)
        visible = row.get("queue_visible_length")
        visible = length if visible is None else int(visible)
        age = row.get("oldest_msg_age_sec")
        scraped = row.get("scrape_time")
        oldest = None
        if visible and age is not None and scraped is not None:
            oldest = scraped.timestamp() - float(age)
        out[name] = QueueStats(name, visible, "", oldest, (("visible", visible), ("invisible", length - visible)))
    return sorted(out.values(), key=lambda s: s.queue)
