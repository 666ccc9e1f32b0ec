"""PostgreSQL benchmarks: the library presets against a large history, and a generic table of 10k tenants.

`python3 bench/bench_postgres.py presets [options]` runs bench/bench_postgres_presets.py with the
same options (every library preset at 10M history rows with 1, 80 and 500 queues; target: <= 50 ms).

`python3 bench/bench_postgres.py generic` (`--tenants 10000 --jobs 100 --rounds 15`): one
collection of a generic job table of 10k tenants x 100 jobs (target <= 200 ms). It creates a
scratch database on the shared server (127.0.0.1:5432, dropped at the end), fills `jobs` with
tenants x jobs rows (per tenant: 70 % completed, 20 % pending, 5 % processing, 5 % failed over two
queues), creates the index docs/sources/postgres.md recommends (`--index plain`: a status-first
one, for comparison), VACUUM ANALYZE, then times full collections of the `postgres` source in
process (ping, the one grouped statement, folding the rows into QueueStats, connections query);
rendering of the exposition fragment, which the scheduler does in a thread, is timed apart. It
prints the figures and the EXPLAIN (ANALYZE, BUFFERS) plan of the grouped statement. It is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import bench_postgres_presets  # noqa: E402
from exporter.metrics import Renderer  # noqa: E402
from exporter.model import SourceStatus  # noqa: E402
from exporter.sources.postgres.presets import build  # noqa: E402
from tests.support.postgres import admin, make_source, scratch_database  # noqa: E402

INDEXES = {
    "partial": ("CREATE INDEX jobs_open ON jobs (tenant_id, queue, status, created_at) "
                "WHERE status IN ('pending', 'processing', 'failed')"),
    "plain": "CREATE INDEX jobs_status ON jobs (status, tenant_id, queue, created_at)",
}
PRESET = """    queues:
      - preset: generic
        table: jobs
        waiting: [pending]
        processing: [processing]
        failed: [failed]
        queue_column: queue
        tenant_column: tenant_id
"""


def seed(dsn: str, tenants: int, jobs: int, index: str = INDEXES["partial"]) -> float:
    started = time.perf_counter()
    with admin(dsn) as conn:
        conn.execute("""CREATE TABLE jobs (id bigserial PRIMARY KEY, tenant_id bigint NOT NULL, queue text NOT NULL,
            status text NOT NULL, payload jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now())""")
        conn.execute("""
INSERT INTO jobs (tenant_id, queue, status, created_at)
SELECT t, CASE WHEN j % 2 = 0 THEN 'mail' ELSE 'pdf' END,
       CASE WHEN j < %(done)s THEN 'completed' WHEN j < %(pending)s THEN 'pending'
            WHEN j < %(processing)s THEN 'processing' ELSE 'failed' END,
       now() - make_interval(secs => (t * 7 + j) %% 3600)
FROM generate_series(1, %(tenants)s) t, generate_series(0, %(jobs)s - 1) j
""".replace("%(done)s", str(int(jobs * 0.70))).replace("%(pending)s", str(int(jobs * 0.90)))
           .replace("%(processing)s", str(int(jobs * 0.95))).replace("%(tenants)s", str(tenants))
           .replace("%(jobs)s", str(jobs)).replace("%%", "%"))
        conn.execute(index)
        conn.execute("VACUUM ANALYZE jobs")
    return time.perf_counter() - started


async def bench(dsn: str, rounds: int) -> dict[str, object]:
    source = make_source(dsn, PRESET + "    timeout: 10s\n    interval: 15s\n")
    times, renders, queries, queues, rendered = [], [], [], 0, 0
    try:
        await source.collect()  # warm: pool, prepared statement, plan cache
        gc.collect()  # as the daemon does once started (exporter/cli.py): long-lived objects leave the GC's scans
        gc.freeze()
        renderer = Renderer([source])  # the daemon's: kept across collections
        for _ in range(rounds):
            started = time.perf_counter()
            reading = await source.collect()
            collected = time.perf_counter()
            status = SourceStatus("pg", "postgres", True, time.time(), 0.0, time.time())
            fragments = renderer.source(status, reading, {})  # the scheduler does this in a thread
            renders.append(time.perf_counter() - collected)
            times.append(collected - started)
            queues = len(reading.queues)
            rendered = sum(len(b) for b in fragments.values())
            queries.append(reading.details["queries"]["generic"]["duration_seconds"])
    finally:
        await source.close()
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "queues": queues,
            "bytes": rendered, "query": statistics.median(queries), "render": statistics.median(renders)}


def explain(dsn: str) -> str:
    query = build(make_source(dsn, PRESET).config.queues[0])  # type: ignore[attr-defined]
    sql = query.sql
    for i, arg in reversed(list(enumerate(query.args, 1))):  # inline the (simple) parameters, $10 before $1
        literal = "'{" + ",".join(arg) + "}'::text[]" if isinstance(arg, list) else f"'{arg}'"
        sql = sql.replace(f"${i}", literal)
    with admin(dsn) as conn:
        rows = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}").fetchall()
    return "\n".join(r[0] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    if sys.argv[1:2] == ["presets"] or len(sys.argv) == 1:
        sys.argv = [sys.argv[0], *sys.argv[2:]]
        bench_postgres_presets.main()
        return
    parser.add_argument("mode", choices=("generic",))
    parser.add_argument("--tenants", type=int, default=10000)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=None, help="default: 5 (presets), 15 (generic)")
    parser.add_argument("--index", choices=sorted(INDEXES), default="partial",
                        help="the recommended partial index (default) or a plain status-first one")
    args = parser.parse_args()
    args.rounds = args.rounds or 15
    with scratch_database(prefix="jqbench") as dsn:
        seeded = seed(dsn, args.tenants, args.jobs, INDEXES[args.index])
        result = asyncio.run(bench(dsn, args.rounds))
        plan = explain(dsn)
        with admin(dsn) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    rows = args.tenants * args.jobs
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    started = time.perf_counter()
    for _ in range(1_000_000):  # a CPU yardstick, to compare figures across machines
        pass
    loop_ms = (time.perf_counter() - started) * 1000
    print(f"postgres {version}: {args.tenants} tenants x {args.jobs} jobs = {rows:,} rows "
          f"(seeded in {seeded:.1f} s); index: {INDEXES[args.index]}")
    print(f"machine: {os.cpu_count()} CPUs, load average {load}; "
          f"an empty 1M-iteration Python loop takes {loop_ms:.0f} ms")
    print(f"{'rounds':>6} {'collect median ms':>18} {'min ms':>7} {'max ms':>7} {'of it SQL ms':>13} "
          f"{'render ms':>10} {'queues':>7} {'bytes':>9}")
    r: dict[str, Any] = result
    print(f"{args.rounds:>6} {r['median'] * 1000:>18.1f} {r['min'] * 1000:>7.1f} {r['max'] * 1000:>7.1f} "
          f"{r['query'] * 1000:>13.1f} {r['render'] * 1000:>10.1f} {r['queues']:>7} {r['bytes']:>9}")
    print("target: collect median <= 200 ms:", "met" if r["median"] <= 0.2 else "NOT met")
    print("\nEXPLAIN (ANALYZE, BUFFERS) of the grouped statement:\n" + plan)


if __name__ == "__main__":
    main()
