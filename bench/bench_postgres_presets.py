"""The library presets against a large history: each preset's collection time and plan at 1M and 10M rows.

Run: `python3 bench/bench_postgres_presets.py` (options `--history 10000000 --queues 1,80,500 --rounds 5
--presets river,oban,...`, `--keep`, `--reuse`, `--build-only`, `--before FILE`; results to `--out`).
For each preset it creates a database `bench_presets_<library>_<history>` on the local server
(127.0.0.1:5432; dropped at the end unless `--keep`; `--reuse` measures on kept ones), installs the
library's schema with its own indexes (pg-boss 12.38 and graphile-worker through the real Node
libraries, Procrastinate through its own schema manager, the others as tests/support/postgres.py
writes their migrations), loads with generate_series: `history` finished jobs spread evenly over the
last 7 days (95 % succeeded, 5 % failed) plus 10,000 waiting jobs (and 200 running, 1,000 scheduled
in the future) over 20 queues, rebuilds the library's indexes after the load (same DDL, faster than
maintaining them row by row), VACUUM ANALYZE, then times collections of a source holding only that
preset (defaults: finished window 1 h, no finished totals) after a first one (`first_ms`: it reads the
whole finished window; the next ones read it incrementally) and EXPLAIN (ANALYZE, BUFFERS) its next
statement.

Drop the databases: `psql -h 127.0.0.1 -U postgres -Atc "SELECT datname FROM pg_database WHERE datname
LIKE 'bench_presets_%'" | xargs -I{} dropdb -h 127.0.0.1 -U postgres --force {}`.

graphile-worker deletes completed jobs, so it has no history: it runs with the waiting jobs only.
pgmq's history is its archive table (`a_<queue>`), which the preset never reads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import procrastinate

from exporter.sources.postgres.presets import PresetQuery
from tests.support.postgres import GOOD_JOB, OBAN, PGMQ, RIVER, SHARED, SOLID_QUEUE, admin, make_source, pgmq_queue

NODE = Path(__file__).resolve().parent.parent / "tests" / "node"
WAITING, RUNNING, SCHEDULED, SPAN = 10_000, 200, 1_000, 7 * 86400
HISTORY_QUEUES = 500
RESULTS = Path(__file__).resolve().parent / "results" / "bench_postgres_presets.json"


def _node(*args: str) -> None:
    subprocess.run(["node", str(NODE / "migrate.mjs"), *args], check=True, capture_output=True, timeout=300)


def _t(i: str, n: int, tz: bool = True) -> str:
    """The finish time of history row i of n: spread evenly over the last 7 days."""
    now = "now()" if tz else "timezone('UTC', now())"
    return f"({now} - make_interval(secs => ({i})::float8 * {SPAN} / {n}))"


def _hq(i: str) -> str:
    """The queue of history row i: half of the history in q0 (one big queue), the rest over q0..q499."""
    return f"CASE WHEN ({i}) % 2 = 0 THEN 'q0' ELSE 'q' || ((({i}) / 2) % {HISTORY_QUEUES}) END"


def _q(i: str, queues: int) -> str:
    """The queue of backlog row i: over the run's queues."""
    return f"'q' || (({i}) % {queues})"


def river(conn: Any, n: int) -> None:
    conn.execute(f"""INSERT INTO lib.river_job (kind, queue, state, attempt, scheduled_at, created_at, finalized_at)
        SELECT 'k', {_hq('i')}, CASE WHEN i % 20 = 0 THEN 'discarded' ELSE 'completed' END::lib.river_job_state, 1,
               {_t('i', n)}, {_t('i', n)}, {_t('i', n)} FROM generate_series(1, {n}) i""")


def river_backlog(conn: Any, queues: int) -> None:
    conn.execute("DELETE FROM lib.river_job WHERE state IN ('available', 'pending', 'scheduled', 'running', "
                 "'retryable')")
    conn.execute("DELETE FROM lib.river_queue")
    conn.execute(f"""INSERT INTO lib.river_job (kind, queue, state, scheduled_at)
        SELECT 'k', {_q('i', queues)}, CASE WHEN i <= {WAITING} THEN 'available' WHEN i <= {WAITING + RUNNING}
               THEN 'running' ELSE 'scheduled' END::lib.river_job_state,
               CASE WHEN i <= {WAITING + RUNNING} THEN now() - make_interval(secs => i % 600)
               ELSE now() + interval '1 hour' END
        FROM generate_series(1, {WAITING + RUNNING + SCHEDULED}) i""")
    conn.execute(f"INSERT INTO lib.river_queue (name) SELECT 'q' || i FROM generate_series(0, {queues - 1}) i")
    conn.execute("VACUUM (ANALYZE, INDEX_CLEANUP OFF) lib.river_job, lib.river_queue")


def oban(conn: Any, n: int) -> None:
    conn.execute(f"""INSERT INTO lib.oban_jobs (worker, queue, state, attempt, scheduled_at, inserted_at,
               completed_at, discarded_at)
        SELECT 'W', {_hq('i')}, CASE WHEN i % 20 = 0 THEN 'discarded' ELSE 'completed' END::lib.oban_job_state, 1,
               {_t('i', n, False)}, {_t('i', n, False)}, CASE WHEN i % 20 <> 0 THEN {_t('i', n, False)} END,
               CASE WHEN i % 20 = 0 THEN {_t('i', n, False)} END FROM generate_series(1, {n}) i""")


def oban_backlog(conn: Any, queues: int) -> None:
    conn.execute("DELETE FROM lib.oban_jobs WHERE state IN ('available', 'scheduled', 'executing', 'retryable')")
    conn.execute(f"""INSERT INTO lib.oban_jobs (worker, queue, state, scheduled_at)
        SELECT 'W', {_q('i', queues)}, CASE WHEN i <= {WAITING} THEN 'available' WHEN i <= {WAITING + RUNNING}
               THEN 'executing' ELSE 'scheduled' END::lib.oban_job_state,
               CASE WHEN i <= {WAITING + RUNNING} THEN timezone('UTC', now()) - make_interval(secs => i % 600)
               ELSE timezone('UTC', now()) + interval '1 hour' END
        FROM generate_series(1, {WAITING + RUNNING + SCHEDULED}) i""")
    conn.execute("VACUUM (ANALYZE, INDEX_CLEANUP OFF) lib.oban_jobs")


def good_job(conn: Any, n: int) -> None:
    conn.execute(f"""INSERT INTO lib.good_jobs (queue_name, scheduled_at, created_at, performed_at, finished_at, error,
               executions_count)
        SELECT {_hq('i')}, {_t('i', n, False)}, {_t('i', n, False)}, {_t('i', n, False)}, {_t('i', n, False)},
               CASE WHEN i % 20 = 0 THEN 'boom' END, 1 FROM generate_series(1, {n}) i""")


def good_job_backlog(conn: Any, queues: int) -> None:
    conn.execute("DELETE FROM lib.good_jobs WHERE finished_at IS NULL")
    conn.execute(f"""INSERT INTO lib.good_jobs (queue_name, scheduled_at, created_at, performed_at, executions_count)
        SELECT {_q('i', queues)}, CASE WHEN i <= {WAITING + RUNNING}
               THEN timezone('UTC', now()) - make_interval(secs => i % 600)
               ELSE timezone('UTC', now()) + interval '1 hour' END, timezone('UTC', now()) - interval '10 minutes',
               CASE WHEN i > {WAITING} AND i <= {WAITING + RUNNING} THEN timezone('UTC', now()) END, 0
        FROM generate_series(1, {WAITING + RUNNING + SCHEDULED}) i""")
    conn.execute("VACUUM (ANALYZE, INDEX_CLEANUP OFF) lib.good_jobs")


def solid_queue(conn: Any, n: int) -> None:
    conn.execute(f"""INSERT INTO lib.solid_queue_jobs (queue_name, class_name, created_at, finished_at)
        SELECT {_hq('i')}, 'J', {_t('i', n, False)}, {_t('i', n, False)} FROM generate_series(1, {n}) i
        WHERE i % 20 <> 0""")


def solid_queue_backlog(conn: Any, queues: int) -> None:
    for table in ("ready", "claimed", "scheduled", "failed", "blocked"):
        conn.execute(f"DELETE FROM lib.solid_queue_{table}_executions")
    conn.execute("DELETE FROM lib.solid_queue_jobs WHERE finished_at IS NULL")
    conn.execute("DELETE FROM lib.solid_queue_processes")
    conn.execute(f"""INSERT INTO lib.solid_queue_jobs (queue_name, class_name, created_at)
        SELECT {_q('i', queues)}, 'J', timezone('UTC', now()) - make_interval(secs => i % 600)
        FROM generate_series(1, {WAITING + RUNNING + SCHEDULED + 1000}) i""")
    first = f"(SELECT max(id) FROM lib.solid_queue_jobs) - {WAITING + RUNNING + SCHEDULED + 1000}"
    conn.execute(f"""INSERT INTO lib.solid_queue_ready_executions (job_id, queue_name, created_at)
        SELECT id, queue_name, created_at FROM lib.solid_queue_jobs WHERE id > {first} AND id <= {first} + {WAITING}""")
    conn.execute("""INSERT INTO lib.solid_queue_processes (kind, last_heartbeat_at, pid, created_at, name, metadata)
        VALUES ('Worker', timezone('UTC', now()), 1, now(), 'w1', '{"thread_pool_size": 3}'),
               ('Dispatcher', timezone('UTC', now()), 2, now(), 'd1', NULL)""")
    conn.execute(f"""INSERT INTO lib.solid_queue_claimed_executions (job_id, process_id, created_at)
        SELECT id, (SELECT min(id) FROM lib.solid_queue_processes), now() FROM lib.solid_queue_jobs
        WHERE id > {first} + {WAITING} AND id <= {first} + {WAITING + RUNNING}""")
    conn.execute(f"""INSERT INTO lib.solid_queue_scheduled_executions (job_id, queue_name, scheduled_at, created_at)
        SELECT id, queue_name, timezone('UTC', now()) + interval '1 hour', now() FROM lib.solid_queue_jobs
        WHERE id > {first} + {WAITING + RUNNING} AND id <= {first} + {WAITING + RUNNING + SCHEDULED}""")
    conn.execute(f"""INSERT INTO lib.solid_queue_failed_executions (job_id, error, created_at)
        SELECT id, 'boom', timezone('UTC', now()) FROM lib.solid_queue_jobs
        WHERE id > {first} + {WAITING + RUNNING + SCHEDULED}""")
    conn.execute("VACUUM (ANALYZE, INDEX_CLEANUP OFF) lib.solid_queue_jobs, lib.solid_queue_ready_executions, "
                 "lib.solid_queue_claimed_executions, lib.solid_queue_scheduled_executions, "
                 "lib.solid_queue_failed_executions, lib.solid_queue_processes")


def procrastinate_schema(conn: Any, dsn: str) -> None:
    async def apply() -> None:
        app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
    asyncio.run(apply())


def procrastinate_rows(conn: Any, n: int) -> None:
    conn.execute("ALTER TABLE procrastinate_jobs DISABLE TRIGGER USER")  # a throwaway bench database
    conn.execute(f"""INSERT INTO procrastinate_jobs (queue_name, task_name, status, attempts, args)
        SELECT {_hq('i')}, 't', CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'succeeded' END::procrastinate_job_status, 1,
               '{{}}' FROM generate_series(1, {n}) i""")
    conn.execute("ALTER TABLE procrastinate_jobs ENABLE TRIGGER USER")


def procrastinate_backlog(conn: Any, queues: int) -> None:
    conn.execute("ALTER TABLE procrastinate_jobs DISABLE TRIGGER USER")
    conn.execute("DELETE FROM procrastinate_events WHERE job_id IN (SELECT id FROM procrastinate_jobs "
                 "WHERE status IN ('todo', 'doing'))")
    conn.execute("DELETE FROM procrastinate_jobs WHERE status IN ('todo', 'doing')")
    first = conn.execute("SELECT coalesce(max(id), 0) FROM procrastinate_jobs").fetchone()[0]
    conn.execute(f"""INSERT INTO procrastinate_jobs (queue_name, task_name, status, scheduled_at, args)
        SELECT {_q('i', queues)}, 't', CASE WHEN i > {WAITING} AND i <= {WAITING + RUNNING} THEN 'doing' ELSE 'todo'
               END::procrastinate_job_status, CASE WHEN i > {WAITING + RUNNING} THEN now() + interval '1 hour' END,
               '{{}}' FROM generate_series(1, {WAITING + RUNNING + SCHEDULED}) i""")
    conn.execute(f"""INSERT INTO procrastinate_events (job_id, type, at)
        SELECT id, 'deferred', now() - make_interval(secs => id % 600) FROM procrastinate_jobs WHERE id > {first}""")
    conn.execute("ALTER TABLE procrastinate_jobs ENABLE TRIGGER USER")
    conn.execute("VACUUM (ANALYZE, INDEX_CLEANUP OFF) procrastinate_jobs, procrastinate_events")


def pg_boss(conn: Any, n: int) -> None:
    # the bench trims pg-boss's queue table to each run's queues while the history still names all
    # 500: the foreign keys to queue go (a foreign key takes no part in a read plan)
    for table, name in conn.execute("SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'f' "
                                    "AND confrelid = 'lib.queue'::regclass AND conparentid = 0").fetchall():
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    conn.execute("CREATE TABLE lib.bench_queues AS TABLE lib.queue")
    conn.execute(f"""INSERT INTO lib.job (name, state, created_on, start_after, started_on, completed_on, keep_until)
        SELECT {_hq('i')}, CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'completed' END::lib.job_state,
               {_t('i', n)}, {_t('i', n)}, {_t('i', n)}, {_t('i', n)}, now() + interval '14 days'
        FROM generate_series(1, {n}) i""")


def pg_boss_backlog(conn: Any, queues: int) -> None:
    conn.execute("DELETE FROM lib.job WHERE state IN ('created', 'retry', 'active')")
    conn.execute("DELETE FROM lib.queue")
    conn.execute(f"INSERT INTO lib.queue SELECT * FROM lib.bench_queues WHERE substr(name, 2)::int < {queues}")
    conn.execute(f"""INSERT INTO lib.job (name, state, created_on, start_after, started_on)
        SELECT {_q('i', queues)}, CASE WHEN i > {WAITING} AND i <= {WAITING + RUNNING} THEN 'active' ELSE 'created'
               END::lib.job_state, now() - make_interval(secs => i % 600),
               CASE WHEN i > {WAITING + RUNNING} THEN now() + interval '1 hour'
               ELSE now() - make_interval(secs => i % 600) END,
               CASE WHEN i > {WAITING} AND i <= {WAITING + RUNNING} THEN now() END
        FROM generate_series(1, {WAITING + RUNNING + SCHEDULED}) i""")
    conn.execute("VACUUM (ANALYZE, INDEX_CLEANUP OFF) lib.job, lib.queue")
    # pg-boss's supervisor keeps each queue's counts cached (queue.failed_count, monitor_on); the real
    # library fills the cache here as it would, and the preset reads it as getQueueStats() does
    _node("pg-boss12-stats", f"{SHARED}/{conn.info.dbname}", "lib", *(f"q{i}" for i in range(queues)))


def graphile(conn: Any, n: int) -> None:
    """graphile-worker deletes completed jobs: no history."""


def graphile_backlog(conn: Any, queues: int) -> None:
    conn.execute("DELETE FROM graphile_worker._private_jobs")
    conn.execute("DELETE FROM graphile_worker._private_job_queues")
    conn.execute(f"SELECT graphile_worker.add_job('task_' || (i % {queues}), '{{}}'::json) "
                 f"FROM generate_series(1, {WAITING}) i")
    conn.execute("VACUUM (ANALYZE, INDEX_CLEANUP OFF) graphile_worker._private_jobs, graphile_worker._private_tasks")


def pgmq(conn: Any, n: int) -> None:
    conn.execute(f"""INSERT INTO pgmq.a_q0 SELECT i, 1, {_t('i', n)}, {_t('i', n)}, {_t('i', n)}, '{{}}'
        FROM generate_series(1, {n}) i""")


def pgmq_backlog(conn: Any, queues: int) -> None:
    for (name,) in conn.execute("SELECT queue_name FROM pgmq.meta").fetchall():
        conn.execute(f"DROP TABLE pgmq.q_{name}")
    conn.execute("DELETE FROM pgmq.meta")
    for i in range(queues):
        conn.execute(pgmq_queue(f"q{i}"))
        conn.execute(f"""INSERT INTO pgmq.q_q{i} (enqueued_at, vt, message)
            SELECT now() - make_interval(secs => j % 600), CASE WHEN j % 50 = 0 THEN now() + interval '30 seconds'
                   ELSE now() - make_interval(secs => j % 600) END, '{{}}'
            FROM generate_series(1, {max(1, WAITING // queues)}) j""")
    conn.execute("ANALYZE pgmq.meta")


def _sql(text: str) -> Callable[[Any, str], None]:
    return lambda conn, dsn: conn.execute(text)


def _node_schema(*args: str) -> Callable[[Any, str], None]:
    return lambda conn, dsn: _node(args[0], dsn, *args[1:])


PGMQ_ARCHIVE = """CREATE TABLE pgmq.a_q0 (msg_id bigint PRIMARY KEY, read_ct int NOT NULL DEFAULT 0,
    enqueued_at timestamptz NOT NULL, archived_at timestamptz NOT NULL, vt timestamptz NOT NULL, message jsonb);"""

@dataclass(frozen=True)
class Library:
    """How the bench builds one library's database: its schema, its history, and each run's backlog."""

    preset: str  # the preset's YAML
    schema: Callable[[Any, str], None]
    history: Callable[[Any, int], None]
    backlog: Callable[[Any, int], None]  # replaces the backlog and the queue registry with N queues
    indexed: str  # the schema whose secondary indexes are rebuilt after the history load


HISTORY_SCHEMA = ("pg-boss12", "lib", *(f"q{i}" for i in range(HISTORY_QUEUES)))
LIBRARIES: dict[str, Library] = {
    "pg-boss": Library("{preset: pg-boss, schema: lib}", _node_schema(*HISTORY_SCHEMA), pg_boss, pg_boss_backlog,
                       "lib"),
    "river": Library("{preset: river, schema: lib}", _sql("CREATE SCHEMA lib;" + RIVER.format(s="lib")), river,
                     river_backlog, "lib"),
    "oban": Library("{preset: oban, schema: lib}", _sql("CREATE SCHEMA lib;" + OBAN.format(s="lib", version=14)),
                    oban, oban_backlog, "lib"),
    "good_job": Library("{preset: good_job, schema: lib}", _sql("CREATE SCHEMA lib;" + GOOD_JOB.format(s="lib")),
                        good_job, good_job_backlog, "lib"),
    "solid_queue": Library("{preset: solid_queue, schema: lib}",
                           _sql("CREATE SCHEMA lib;" + SOLID_QUEUE.format(s="lib")), solid_queue, solid_queue_backlog,
                           "lib"),
    "procrastinate": Library("{preset: procrastinate}", procrastinate_schema, procrastinate_rows,
                             procrastinate_backlog, "public"),
    "graphile-worker": Library("{preset: graphile-worker}", _node_schema("graphile"), graphile, graphile_backlog,
                               "graphile_worker"),
    "pgmq": Library("{preset: pgmq}", _sql(PGMQ + PGMQ_ARCHIVE), pgmq, pgmq_backlog, "pgmq"),
}


def load(dsn: str, library: str, history: int) -> float:
    """The library's schema and history; its secondary indexes rebuilt after the load (same DDL)."""
    started = time.perf_counter()
    lib = LIBRARIES[library]
    with admin(dsn) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        lib.schema(conn, dsn)
        indexes = _drop_indexes(conn, lib.indexed)
        lib.history(conn, history)
        for ddl in indexes:
            conn.execute(ddl)
        conn.execute("VACUUM ANALYZE")
        conn.execute("CREATE TABLE public.jqbench_built (history bigint)")
        conn.execute("INSERT INTO public.jqbench_built VALUES (%s)", (history,))
    return time.perf_counter() - started


def _drop_indexes(conn: Any, schema: str) -> list[str]:
    """Secondary indexes (not backing a constraint, not a partitioned parent's): dropped, their DDL kept."""
    rows = conn.execute("SELECT i.indexname, i.indexdef FROM pg_indexes i JOIN pg_namespace n ON n.nspname = "
                        "i.schemaname JOIN pg_class c ON c.relname = i.indexname AND c.relnamespace = n.oid "
                        "LEFT JOIN pg_constraint k ON k.conindid = c.oid "
                        "WHERE i.schemaname = %s AND k.oid IS NULL AND i.indexdef NOT LIKE '%% ON ONLY %%' "
                        "AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = c.oid)",
                        (schema,)).fetchall()
    for name, _ in rows:
        conn.execute(f'DROP INDEX "{schema}"."{name}"')
    return [ddl for _, ddl in rows]


@contextmanager
def bench_database(library: str, history: int, keep: bool, reuse: bool = False) -> Iterator[tuple[str, bool]]:
    """`bench_presets_<library>_<history>` on the shared server: reused when a finished build of it exists
    (`--keep` leaves it for the next run), else built (`--reuse`: never built, an error); yields (dsn, built now)."""
    name = f"bench_presets_{library.replace('-', '_')}_{history}"
    dsn = f"{SHARED}/{name}"
    with admin() as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
    built = False
    if exists:
        with admin(dsn) as conn:
            built = conn.execute("SELECT to_regclass('public.jqbench_built') IS NOT NULL").fetchone()[0]
    if not built and reuse:
        raise SystemExit(f"{name} is not built: run without --reuse (or with --build-only) first")
    if not built:
        with admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield dsn, not built
    finally:
        if not keep:
            with admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def measure(dsn: str, library: str, rounds: int) -> dict[str, Any]:
    body = ("    connections: false\n    timeout: 10s\n    interval: 15s\n    queues:\n"
            f"      - {LIBRARIES[library].preset}\n")
    source = make_source(dsn, body)
    collects, queries = [], []
    try:
        started = time.perf_counter()
        reading = await source.collect()  # warm: pool, schema probe, plan, the whole finished window
        first = time.perf_counter() - started
        error = reading.details["queries"][library]["error"]
        for _ in range(rounds):
            started = time.perf_counter()
            reading = await source.collect()
            collects.append(time.perf_counter() - started)
            queries.append(reading.details["queries"][library]["duration_seconds"])
        resolved: PresetQuery = source._resolved.get(0) or source.presets[0]
        window = getattr(source, "_windows", {}).get(0)  # the steady state: the next incremental read
        since = window.since() if window is not None else 0.0
    finally:
        await source.close()
    with admin(dsn) as conn:
        conn.execute("SET jit = off")  # as the exporter's sessions
        conn.execute("SET max_parallel_workers_per_gather = 0")  # as its built-in statements (SERIAL)
        sql = resolved.sql.replace("$1::float8", f"{since!r}::float8")
        if getattr(resolved, "listing", None):  # pgmq: the statement over the listed queue tables
            sql = resolved.expand(conn.execute(resolved.listing).fetchall())
        plan = "\n".join(r[0] for r in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}").fetchall())
    return {"collect_ms": round(statistics.median(collects) * 1000, 1), "query_ms": round(statistics.median(queries)
            * 1000, 1), "max_collect_ms": round(max(collects) * 1000, 1), "first_ms": round(first * 1000, 1),
            "queues": len(reading.queues),
            "depth": sum(q.depth for q in reading.queues), "error": error, "plan": plan}


def run(history: int, libraries: list[str], counts: list[int], rounds: int, keep: bool = False,
        build_only: bool = False, reuse: bool = False) -> dict[str, Any]:
    """Every library at one history size, each in a database of its own built once and reused for
    every queue count (the backlog and the queue registry are replaced between runs)."""
    results: dict[str, Any] = {}
    for library in libraries:
        with bench_database(library, history, keep or build_only or reuse, reuse) as (dsn, fresh):
            seeded = load(dsn, library, history) if fresh else 0.0
            print(f"{library:>16} {history:>10,} history: " + (f"built in {seeded:.0f} s" if fresh else "reused"),
                  file=sys.stderr, flush=True)
            if build_only:
                continue
            for queues in counts:
                with admin(dsn) as conn:
                    LIBRARIES[library].backlog(conn, queues)
                result = asyncio.run(measure(dsn, library, rounds))
                result["history"] = 0 if library == "graphile-worker" else history
                results.setdefault(library, {})[str(queues)] = result
                print(f"{library:>16} {queues:>4} queues: collect {result['collect_ms']:>7.1f} ms "
                      f"(statement {result['query_ms']:.1f} ms), {result['queues']} queues, depth {result['depth']}, "
                      f"error {result['error']}", file=sys.stderr, flush=True)
    return results


PLANS = Path(__file__).resolve().parent.parent / "docs" / "sources" / "postgres-plans.md"


def plans_markdown(document: dict[str, Any]) -> str:
    """docs/sources/postgres-plans.md: each preset's plan at its largest queue count, from the results."""
    out = ["# PostgreSQL presets: query plans at 10M history rows", "",
           "`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)` of each library preset's statement (with `jit = off` and",
           "`max_parallel_workers_per_gather = 0`, as the exporter runs it), as",
           f"`{document['command']}` recorded them in",
           "[bench/results/bench_postgres_presets.json](../../bench/results/bench_postgres_presets.json)",
           f"({document['measured']}; {document['conditions']}). How the data is built:",
           "[bench/bench_postgres_presets.py](../../bench/bench_postgres_presets.py); the figures:",
           "[postgres.md, Performance](postgres.md#performance). The times inside a plan include EXPLAIN's own",
           "timing overhead and, on this shared machine, waiting for a CPU.", ""]
    for library, runs in document["details"].items():
        queues = max(runs, key=int)
        out += [f"### `{library}`, {queues} queues", "", "```", runs[queues]["plan"], "```", ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=10_000_000)
    parser.add_argument("--queues", default="1,80,500", help="queue counts, comma-separated")
    parser.add_argument("--presets", default=",".join(LIBRARIES), help="which, comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the databases for the next run")
    parser.add_argument("--build-only", action="store_true", help="build (and keep) the databases, measure nothing")
    parser.add_argument("--reuse", action="store_true", help="measure on the kept databases, never build or drop them")
    parser.add_argument("--before", help="a results JSON of the same bench on other code (main): its figures "
                                         "become the table `before`")
    parser.add_argument("--out", default=str(RESULTS), help="the results JSON (bench/results/ shape)")
    parser.add_argument("--plans", default=str(PLANS), help="the plans page written from the results")
    args = parser.parse_args()
    libraries = [name for name in args.presets.split(",") if name]
    unknown = sorted(set(libraries) - set(LIBRARIES))
    if unknown:
        raise SystemExit(f"unknown presets {unknown}; choose from {sorted(LIBRARIES)}")
    counts = [int(n) for n in args.queues.split(",")]
    results = run(args.history, libraries, counts, args.rounds, args.keep, args.build_only, args.reuse)
    if args.build_only:
        return
    with admin() as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    load_average = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    out = Path(args.out)
    if out.exists():  # a run of some presets replaces their rows and keeps the others'
        results = {**json.loads(out.read_text()).get("details", {}), **results}
    results = {library: results[library] for library in LIBRARIES if library in results}
    libraries = list(results)
    rows = [[library, *(f"{results[library][str(n)]['collect_ms']} ms" for n in counts)] for library in libraries]
    first = [[library, *(f"{results[library][str(n)].get('first_ms', '-')} ms" for n in counts)]
             for library in libraries]
    tables = {"collect": {"columns": ["preset", *(f"{n} queue{'s' if n > 1 else ''}" for n in counts)], "rows": rows},
              "first": {"columns": ["preset", *(f"{n} queue{'s' if n > 1 else ''}" for n in counts)], "rows": first}}
    kept = json.loads(out.read_text()).get("tables", {}) if out.exists() else {}
    if "before" in kept and not args.before:  # the README shows it: a re-measure keeps main's figures
        tables["before"] = kept["before"]
    if args.before:
        before = json.loads(Path(args.before).read_text())["details"]
        tables["before"] = {"columns": tables["collect"]["columns"],
                            "rows": [[library, *(f"{before[library][str(n)]['collect_ms']} ms" for n in counts)]
                                     for library in libraries if library in before]}
    document = {
        "bench": "bench_postgres_presets",
        "command": f"python3 bench/bench_postgres_presets.py --history {args.history} --queues {args.queues}"
                   + (" --reuse" if args.reuse else ""),
        "measured": time.strftime("%Y-%m-%d", time.gmtime()),
        "conditions": f"PostgreSQL {version}, {os.cpu_count()} vCPUs shared by 8 concurrent test/bench workloads, "
                      f"load average {load_average} at the end; median of {args.rounds} collections; "
                      f"{args.history:,} history rows",
        "tables": tables,
        "target_ms": 50,
        "details": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    Path(args.plans).write_text(plans_markdown(document))
    print(json.dumps(document["tables"], indent=2))


if __name__ == "__main__":
    main()
