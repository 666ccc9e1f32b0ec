"""The library presets against a large history: each preset's collection time and plan at 1M and 10M rows.

Run: `python3 bench/bench_postgres.py presets` (options `--history 1000000,10000000 --rounds 5
--presets river,oban,...`; JSON to stdout, `--out FILE` too). For each history size and preset it
creates a throwaway database on the local server (127.0.0.1:5432, dropped at the end), installs the
library's schema with its own indexes (pg-boss 12.38 and graphile-worker through the real Node
libraries, Procrastinate through its own schema manager, the others as tests/support/postgres.py
writes their migrations), loads with generate_series: `history` finished jobs spread evenly over the
last 7 days (95 % succeeded, 5 % failed) plus 10,000 waiting jobs (and 200 running, 1,000 scheduled
in the future) over 20 queues, rebuilds the library's indexes after the load (same DDL, faster than
maintaining them row by row), VACUUM ANALYZE, then times collections of a source holding only that
preset (defaults: finished window 1 h, no finished totals) and EXPLAIN (ANALYZE, BUFFERS) its statement.

graphile-worker deletes completed jobs, so it has no history: it runs with the waiting jobs only.
pgmq's history is its archive table (`a_<queue>`), which the preset never reads.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import procrastinate

from exporter.sources.postgres.presets import PresetQuery
from tests.support.postgres import GOOD_JOB, OBAN, PGMQ, RIVER, SOLID_QUEUE, admin, make_source, pgmq_queue

NODE = Path(__file__).resolve().parent.parent / "tests" / "node"
WAITING, RUNNING, SCHEDULED, QUEUES, SPAN = 10_000, 200, 1_000, 20, 7 * 86400


def _node(*args: str) -> None:
    subprocess.run(["node", str(NODE / "migrate.mjs"), *args], check=True, capture_output=True, timeout=300)


def _t(i: str, n: int, tz: bool = True) -> str:
    """The finish time of history row i of n: spread evenly over the last 7 days."""
    now = "now()" if tz else "timezone('UTC', now())"
    return f"({now} - make_interval(secs => ({i})::float8 * {SPAN} / {n}))"


def _q(i: str) -> str:
    return f"'q' || (({i}) % {QUEUES})"


def river(conn: Any, n: int) -> None:
    conn.execute(f"""INSERT INTO lib.river_job (kind, queue, state, attempt, scheduled_at, created_at, finalized_at)
        SELECT 'k', {_q('i')}, CASE WHEN i % 20 = 0 THEN 'discarded' ELSE 'completed' END::lib.river_job_state, 1,
               {_t('i', n)}, {_t('i', n)}, {_t('i', n)} FROM generate_series(1, {n}) i""")
    conn.execute(f"""INSERT INTO lib.river_job (kind, queue, state, scheduled_at)
        SELECT 'k', {_q('i')}, CASE WHEN i <= {WAITING} THEN 'available' WHEN i <= {WAITING + RUNNING} THEN 'running'
               ELSE 'scheduled' END::lib.river_job_state,
               CASE WHEN i <= {WAITING + RUNNING} THEN now() - make_interval(secs => i % 600)
               ELSE now() + interval '1 hour' END
        FROM generate_series(1, {WAITING + RUNNING + SCHEDULED}) i""")
    conn.execute(f"INSERT INTO lib.river_queue (name) SELECT 'q' || i FROM generate_series(0, {QUEUES - 1}) i")


def oban(conn: Any, n: int) -> None:
    conn.execute(f"""INSERT INTO lib.oban_jobs (worker, queue, state, attempt, scheduled_at, inserted_at,
               completed_at, discarded_at)
        SELECT 'W', {_q('i')}, CASE WHEN i % 20 = 0 THEN 'discarded' ELSE 'completed' END::lib.oban_job_state, 1,
               {_t('i', n, False)}, {_t('i', n, False)}, CASE WHEN i % 20 <> 0 THEN {_t('i', n, False)} END,
               CASE WHEN i % 20 = 0 THEN {_t('i', n, False)} END FROM generate_series(1, {n}) i""")
    conn.execute(f"""INSERT INTO lib.oban_jobs (worker, queue, state, scheduled_at)
        SELECT 'W', {_q('i')}, CASE WHEN i <= {WAITING} THEN 'available' WHEN i <= {WAITING + RUNNING}
               THEN 'executing' ELSE 'scheduled' END::lib.oban_job_state,
               CASE WHEN i <= {WAITING + RUNNING} THEN timezone('UTC', now()) - make_interval(secs => i % 600)
               ELSE timezone('UTC', now()) + interval '1 hour' END
        FROM generate_series(1, {WAITING + RUNNING + SCHEDULED}) i""")


def good_job(conn: Any, n: int) -> None:
    conn.execute(f"""INSERT INTO lib.good_jobs (queue_name, scheduled_at, created_at, performed_at, finished_at, error,
               executions_count)
        SELECT {_q('i')}, {_t('i', n, False)}, {_t('i', n, False)}, {_t('i', n, False)}, {_t('i', n, False)},
               CASE WHEN i % 20 = 0 THEN 'boom' END, 1 FROM generate_series(1, {n}) i""")
    conn.execute(f"""INSERT INTO lib.good_jobs (queue_name, scheduled_at, created_at, performed_at, executions_count)
        SELECT {_q('i')}, CASE WHEN i <= {WAITING + RUNNING}
               THEN timezone('UTC', now()) - make_interval(secs => i % 600)
               ELSE timezone('UTC', now()) + interval '1 hour' END, timezone('UTC', now()) - interval '10 minutes',
               CASE WHEN i > {WAITING} AND i <= {WAITING + RUNNING} THEN timezone('UTC', now()) END, 0
        FROM generate_series(1, {WAITING + RUNNING + SCHEDULED}) i""")


def solid_queue(conn: Any, n: int) -> None:
    conn.execute(f"""INSERT INTO lib.solid_queue_jobs (queue_name, class_name, created_at, finished_at)
        SELECT {_q('i')}, 'J', {_t('i', n, False)}, {_t('i', n, False)} FROM generate_series(1, {n}) i
        WHERE i % 20 <> 0""")
    conn.execute(f"""INSERT INTO lib.solid_queue_jobs (queue_name, class_name, created_at)
        SELECT {_q('i')}, 'J', timezone('UTC', now()) - make_interval(secs => i % 600)
        FROM generate_series(1, {WAITING + RUNNING + SCHEDULED + 1000}) i""")
    first = f"(SELECT max(id) FROM lib.solid_queue_jobs) - {WAITING + RUNNING + SCHEDULED + 1000}"
    conn.execute(f"""INSERT INTO lib.solid_queue_ready_executions (job_id, queue_name, created_at)
        SELECT id, queue_name, created_at FROM lib.solid_queue_jobs WHERE id > {first} AND id <= {first} + {WAITING}""")
    conn.execute(f"""INSERT INTO lib.solid_queue_claimed_executions (job_id, process_id, created_at)
        SELECT id, 1, now() FROM lib.solid_queue_jobs WHERE id > {first} + {WAITING}
        AND id <= {first} + {WAITING + RUNNING}""")
    conn.execute(f"""INSERT INTO lib.solid_queue_scheduled_executions (job_id, queue_name, scheduled_at, created_at)
        SELECT id, queue_name, timezone('UTC', now()) + interval '1 hour', now() FROM lib.solid_queue_jobs
        WHERE id > {first} + {WAITING + RUNNING} AND id <= {first} + {WAITING + RUNNING + SCHEDULED}""")
    conn.execute(f"""INSERT INTO lib.solid_queue_failed_executions (job_id, error, created_at)
        SELECT id, 'boom', timezone('UTC', now()) FROM lib.solid_queue_jobs
        WHERE id > {first} + {WAITING + RUNNING + SCHEDULED}""")
    conn.execute("""INSERT INTO lib.solid_queue_processes (kind, last_heartbeat_at, pid, created_at, name)
        VALUES ('Worker', timezone('UTC', now()), 1, now(), 'w1'),
               ('Dispatcher', timezone('UTC', now()), 2, now(), 'd1')""")


def procrastinate_schema(conn: Any, dsn: str) -> None:
    async def apply() -> None:
        app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
    asyncio.run(apply())


def procrastinate_rows(conn: Any, n: int) -> None:
    conn.execute("ALTER TABLE procrastinate_jobs DISABLE TRIGGER USER")  # a throwaway bench database
    conn.execute(f"""INSERT INTO procrastinate_jobs (queue_name, task_name, status, attempts, args)
        SELECT {_q('i')}, 't', CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'succeeded' END::procrastinate_job_status, 1,
               '{{}}' FROM generate_series(1, {n}) i""")
    conn.execute(f"""INSERT INTO procrastinate_jobs (queue_name, task_name, status, scheduled_at, args)
        SELECT {_q('i')}, 't', CASE WHEN i > {WAITING} AND i <= {WAITING + RUNNING} THEN 'doing' ELSE 'todo'
               END::procrastinate_job_status, CASE WHEN i > {WAITING + RUNNING} THEN now() + interval '1 hour' END,
               '{{}}' FROM generate_series(1, {WAITING + RUNNING + SCHEDULED}) i""")
    conn.execute(f"""INSERT INTO procrastinate_events (job_id, type, at)
        SELECT id, 'deferred', now() - make_interval(secs => id % 600) FROM procrastinate_jobs WHERE id > {n}""")
    conn.execute("ALTER TABLE procrastinate_jobs ENABLE TRIGGER USER")


def pg_boss(conn: Any, n: int) -> None:
    conn.execute(f"""INSERT INTO lib.job (name, state, created_on, start_after, started_on, completed_on, keep_until)
        SELECT {_q('i')}, CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'completed' END::lib.job_state,
               {_t('i', n)}, {_t('i', n)}, {_t('i', n)}, {_t('i', n)}, now() + interval '14 days'
        FROM generate_series(1, {n}) i""")
    conn.execute(f"""INSERT INTO lib.job (name, state, created_on, start_after, started_on)
        SELECT {_q('i')}, CASE WHEN i > {WAITING} AND i <= {WAITING + RUNNING} THEN 'active' ELSE 'created'
               END::lib.job_state, now() - make_interval(secs => i % 600),
               CASE WHEN i > {WAITING + RUNNING} THEN now() + interval '1 hour'
               ELSE now() - make_interval(secs => i % 600) END,
               CASE WHEN i > {WAITING} AND i <= {WAITING + RUNNING} THEN now() END
        FROM generate_series(1, {WAITING + RUNNING + SCHEDULED}) i""")


def graphile(conn: Any, n: int) -> None:
    conn.execute(f"SELECT graphile_worker.add_job('task_' || (i % {QUEUES}), '{{}}'::json) "
                 f"FROM generate_series(1, {WAITING}) i")


def pgmq(conn: Any, n: int) -> None:
    for i in range(QUEUES):
        conn.execute(f"""INSERT INTO pgmq.q_q{i} (enqueued_at, vt, message)
            SELECT now() - make_interval(secs => j % 600), CASE WHEN j % 50 = 0 THEN now() + interval '30 seconds'
                   ELSE now() - make_interval(secs => j % 600) END, '{{}}'
            FROM generate_series(1, {WAITING // QUEUES}) j""")
    conn.execute(f"""INSERT INTO pgmq.a_q0 SELECT i, 1, {_t('i', n)}, {_t('i', n)}, {_t('i', n)}, '{{}}'
        FROM generate_series(1, {n}) i""")


def _sql(text: str) -> Callable[[Any, str], None]:
    return lambda conn, dsn: conn.execute(text)


def _node_schema(*args: str) -> Callable[[Any, str], None]:
    return lambda conn, dsn: _node(args[0], dsn, *args[1:])


PGMQ_ARCHIVE = """CREATE TABLE pgmq.a_q0 (msg_id bigint PRIMARY KEY, read_ct int NOT NULL DEFAULT 0,
    enqueued_at timestamptz NOT NULL, archived_at timestamptz NOT NULL, vt timestamptz NOT NULL, message jsonb);"""

# name -> (preset YAML, schema installer, row loader, schema whose secondary indexes are rebuilt after the load)
LIBRARIES: dict[str, tuple[str, Callable[[Any, str], None], Callable[[Any, int], None], str]] = {
    "pg-boss": ("{preset: pg-boss, schema: lib}", _node_schema("pg-boss12", "lib", *(f"q{i}" for i in range(QUEUES))),
                pg_boss, "lib"),
    "river": ("{preset: river, schema: lib}", _sql("CREATE SCHEMA lib;" + RIVER.format(s="lib")), river, "lib"),
    "oban": ("{preset: oban, schema: lib}", _sql("CREATE SCHEMA lib;" + OBAN.format(s="lib", version=14)), oban,
             "lib"),
    "good_job": ("{preset: good_job, schema: lib}", _sql("CREATE SCHEMA lib;" + GOOD_JOB.format(s="lib")), good_job,
                 "lib"),
    "solid_queue": ("{preset: solid_queue, schema: lib}", _sql("CREATE SCHEMA lib;" + SOLID_QUEUE.format(s="lib")),
                    solid_queue, "lib"),
    "procrastinate": ("{preset: procrastinate}", procrastinate_schema, procrastinate_rows, "public"),
    "graphile-worker": ("{preset: graphile-worker}", _node_schema("graphile"), graphile, "graphile_worker"),
    "pgmq": ("{preset: pgmq}", _sql(PGMQ + "".join(pgmq_queue(f"q{i}") for i in range(QUEUES)) + PGMQ_ARCHIVE), pgmq,
             "pgmq"),
}


def load(dsn: str, library: str, history: int) -> float:
    """The library's schema and rows; its secondary indexes rebuilt after the load (same DDL)."""
    started = time.perf_counter()
    _, schema_of, rows, schema = LIBRARIES[library]
    with admin(dsn) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        schema_of(conn, dsn)
        indexes = _drop_indexes(conn, schema)
        rows(conn, 0 if library == "graphile-worker" else history)
        for ddl in indexes:
            conn.execute(ddl)
        conn.execute("VACUUM ANALYZE")
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


async def measure(dsn: str, library: str, rounds: int) -> dict[str, Any]:
    preset = LIBRARIES[library][0]
    body = f"    connections: false\n    timeout: 10s\n    interval: 15s\n    queues:\n      - {preset}\n"
    source = make_source(dsn, body)
    collects, queries = [], []
    try:
        reading = await source.collect()  # warm: pool, schema probe, plan
        error = reading.details["queries"][library]["error"]
        for _ in range(rounds):
            started = time.perf_counter()
            reading = await source.collect()
            collects.append(time.perf_counter() - started)
            queries.append(reading.details["queries"][library]["duration_seconds"])
        resolved: PresetQuery = source._resolved.get(0) or source.presets[0]
    finally:
        await source.close()
    with admin(dsn) as conn:
        plan = "\n".join(r[0] for r in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {resolved.sql}").fetchall())
    return {"collect_ms": round(statistics.median(collects) * 1000, 1), "query_ms": round(statistics.median(queries)
            * 1000, 1), "max_collect_ms": round(max(collects) * 1000, 1), "queues": len(reading.queues),
            "depth": sum(q.depth for q in reading.queues), "error": error, "plan": plan}


def run(histories: list[int], libraries: list[str], rounds: int) -> dict[str, Any]:
    """Every library at every history size, each in a database of its own (dropped afterwards)."""
    from tests.support.postgres import scratch_database

    results: dict[str, Any] = {}
    for history in histories:
        for library in libraries:
            with scratch_database(prefix="jqbench") as dsn:
                seeded = load(dsn, library, history)
                result = asyncio.run(measure(dsn, library, rounds))
            result["seeded_s"] = round(seeded, 1)
            result["history"] = 0 if library == "graphile-worker" else history
            results.setdefault(library, {})[str(history)] = result
            print(f"{library:>16} {history:>10,} history: collect {result['collect_ms']:>7.1f} ms "
                  f"(statement {result['query_ms']:.1f} ms), {result['queues']} queues, depth {result['depth']}, "
                  f"seeded in {seeded:.0f} s", file=sys.stderr, flush=True)
    return results
