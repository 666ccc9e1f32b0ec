"""Every queue preset against the real PostgreSQL, in a database this module creates and drops.

pg-boss (9, 10 and 12) and graphile-worker enqueue through the real Node libraries
(tests/node/pg_*), Procrastinate through the real Python library and its real worker; pgmq, River,
Oban, good_job and Solid Queue get their schemas as the libraries' migrations define them
(tests/support/postgres.py). Each library lives in a schema of its own.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import procrastinate
import pytest

from exporter.model import QueueStats, Reading
from tests.support.postgres import (
    GOOD_JOB,
    OBAN,
    PGMQ,
    RIVER,
    RIVER_003,
    SOLID_QUEUE,
    admin,
    collect,
    make_source,
    pgmq_queue,
    scratch_database,
)

NODE = Path(__file__).resolve().parents[1] / "node"


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    with scratch_database() as url:
        yield url


def run_sql(dsn: str, sql: str) -> None:
    with admin(dsn) as conn:
        conn.execute(sql)


def value(dsn: str, sql: str) -> object:
    with admin(dsn) as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return row[0]


def node(script: str, dsn: str, *args: str) -> dict[str, object]:
    if not (NODE / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--prefix", str(NODE), "--silent", "--no-audit", "--no-fund"], check=True)
    done = subprocess.run(["node", str(NODE / script), dsn, *args], check=True, capture_output=True, text=True,
                          timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1])


def by_queue(queues: tuple[QueueStats, ...]) -> dict[str, QueueStats]:
    return {q.queue: q for q in queues}


def series(reading: Reading, metric: str) -> dict[tuple[str, ...], float]:
    """The samples of one metric of a reading, by label values."""
    return {s.labels: s.value for s in reading.samples if s.metric == metric}


def finished(reading: Reading) -> dict[str, dict[str, object]]:
    """The `jobqueue_jobs_finished_window` series by queue as {window_seconds, outcome: n} (one library
    per test, no tenant)."""
    out: dict[str, dict[str, object]] = {}
    for (tenant, queue, outcome, window), n in series(reading, "jobqueue_jobs_finished_window").items():
        assert tenant == ""
        out.setdefault(queue, {"window_seconds": float(window.removesuffix("s"))})[outcome] = n
    return out


def query_error(reading: Reading, name: str) -> str | None:
    assert reading.details["queries"][name]["ok"] is (reading.details["queries"][name]["error"] is None)
    return reading.details["queries"][name]["error"]  # type: ignore[no-any-return]


async def test_generic_per_tenant_with_stale_processing(dsn: str) -> None:
    run_sql(dsn, """
CREATE SCHEMA gen;
CREATE TABLE gen.jobs (id bigserial PRIMARY KEY, tenant_id int NOT NULL, queue text NOT NULL, status text NOT NULL,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
INSERT INTO gen.jobs (tenant_id, queue, status, created_at, updated_at) VALUES
  (1, 'mail', 'pending', '2026-01-01 00:00:10+00', now()), (1, 'mail', 'pending', '2026-01-01 00:00:05+00', now()),
  (1, 'mail', 'processing', '2026-01-01 00:00:00+00', now() - interval '1 hour'),
  (1, 'mail', 'processing', '2026-01-01 00:00:00+00', now()),
  (1, 'mail', 'failed', '2025-01-01 00:00:00+00', now()), (1, 'mail', 'done', '2025-01-01 00:00:00+00', now()),
  (2, 'mail', 'processing', '2026-01-01 00:00:00+00', now()), (2, 'pdf', 'pending', '2026-02-01 00:00:00+00', now()),
  (2, 'pdf', 'archived', '2026-02-01 00:00:00+00', now());
""")
    reading = await collect(dsn, """    queues:
      - preset: generic
        table: gen.jobs
        waiting: [pending]
        processing: [processing]
        failed: [failed]
        other: [done]
        queue_column: queue
        tenant_column: tenant_id
        updated_column: updated_at
        stale_after: 10m
""")
    assert reading.queues == (
        QueueStats("mail", 2, "1", 1767225605.0, (("pending", 2), ("processing", 2), ("failed", 1), ("done", 1),
                                                    ("stale", 1)), 1),
        QueueStats("mail", 0, "2", None, (("pending", 0), ("processing", 1), ("failed", 0), ("done", 0),
                                            ("stale", 0)), 0),
        QueueStats("pdf", 1, "2", 1769904000.0, (("pending", 1), ("processing", 0), ("failed", 0), ("done", 0),
                                                   ("stale", 0)), 0),
    )
    assert reading.details["queries"]["generic"]["ok"] is True


async def test_generic_without_queue_column_and_epoch_millis(dsn: str) -> None:
    run_sql(dsn, """
CREATE TABLE gen.tasks (id serial, state text, enqueued_ms bigint);
INSERT INTO gen.tasks (state, enqueued_ms) VALUES ('new', 1767225600500), ('new', 1767225601000), ('err', 1);
""")
    reading = await collect(dsn, """    queues:
      - preset: generic
        name: tasks
        table: gen.tasks
        status_column: state
        waiting: [new]
        failed: [err]
        enqueued_column: enqueued_ms
        enqueued_unit: ms
        queue: tasks
        queues: [tasks, spare]
""")
    assert reading.queues == (
        QueueStats("spare", 0, "", None, (("new", 0), ("err", 0)), 0),
        QueueStats("tasks", 2, "", 1767225600.5, (("new", 2), ("err", 1)), 1),
    )


async def test_pgmq_counts_visible_and_ages_only_visible_messages(dsn: str) -> None:
    """A message being worked on (vt in the future) is neither depth nor the oldest age, whatever its age."""
    run_sql(dsn, PGMQ + pgmq_queue("orders") + pgmq_queue("empty") + pgmq_queue("Billing") + """
INSERT INTO pgmq.q_billing (vt, message) VALUES (now(), '{}');
INSERT INTO pgmq.q_orders (enqueued_at, vt, message) VALUES
  (now() - interval '300 seconds', now() + interval '30 seconds', '{}'),
  (now() - interval '100 seconds', now() - interval '100 seconds', '{}'),
  (now() - interval '50 seconds', now() - interval '50 seconds', '{}'),
  (now() - interval '10 seconds', now() + interval '30 seconds', '{}');
""")
    reading = await collect(dsn, "    queues:\n      - preset: pgmq\n")
    visible = value(dsn, "SELECT extract(epoch FROM min(enqueued_at))::float8 FROM pgmq.q_orders WHERE vt <= now()")
    billing = value(dsn, "SELECT extract(epoch FROM enqueued_at)::float8 FROM pgmq.q_billing")
    assert by_queue(reading.queues) == {
        "Billing": QueueStats("Billing", 1, "", billing, (("visible", 1), ("invisible", 0))),  # type: ignore[arg-type]
        "empty": QueueStats("empty", 0, "", None, (("visible", 0), ("invisible", 0))),
        "orders": QueueStats("orders", 2, "", visible, (("visible", 2), ("invisible", 2))),  # type: ignore[arg-type]
    }


async def test_pgmq_missing_schema_names_what_it_needs() -> None:
    with scratch_database() as empty:
        reading = await collect(empty, "    queues:\n      - preset: pgmq\n")
    assert reading.queues == ()
    assert query_error(reading, "pgmq") == "pgmq: the preset needs pgmq 1.0 or later (table pgmq.meta); found ok=False"


async def test_pg_boss_10_real_library(dsn: str) -> None:
    """pg-boss 10 (no flows, no `blocked` column): live states only; finished jobs over the window."""
    node("pg_boss.js", dsn)
    reading = await collect(dsn, "    queues:\n      - preset: pg-boss\n")
    oldest = value(dsn, "SELECT extract(epoch FROM min(created_on))::float8 FROM pgboss.job "
                        "WHERE name = 'emails' AND state = 'created' AND start_after <= now()")
    states = ("created", "retry", "deferred", "active")

    def jobs(*counts: int) -> tuple[tuple[str, int], ...]:
        return tuple(zip(states, counts, strict=True))

    reports = value(dsn, "SELECT extract(epoch FROM min(created_on))::float8 FROM pgboss.job "
                         "WHERE name = 'reports' AND state = 'created'")
    assert by_queue(reading.queues) == {
        "emails": QueueStats("emails", 2, "", oldest, jobs(2, 0, 1, 1), None,  # type: ignore[arg-type]
                             completed_last_hour=0),
        "idle": QueueStats("idle", 0, "", None, jobs(0, 0, 0, 0), None, completed_last_hour=0),
        "reports": QueueStats("reports", 1, "", reports, jobs(1, 0, 0, 0), None,  # type: ignore[arg-type]
                              completed_last_hour=1),
    }
    window = {"window_seconds": 3600.0, "completed": 0, "failed": 0, "cancelled": 0}
    assert finished(reading) == {"emails": window, "idle": window, "reports": {**window, "completed": 1, "failed": 1}}
    assert series(reading, "jobqueue_jobs_finished_window")[("", "reports", "completed", "3600s")] == 1
    history = await collect(dsn, "    queues:\n      - preset: pg-boss\n        count_finished: true\n"
                                 "        finished_window: null\n")
    assert by_queue(history.queues)["reports"] == QueueStats("reports", 1, "", reports, (  # type: ignore[arg-type]
        ("created", 1), ("retry", 0), ("deferred", 0), ("active", 0), ("completed", 1), ("cancelled", 0),
        ("failed", 1)), 1)
    assert "finished" not in history.details and not finished(history)


async def test_pg_boss_12_flows_and_start_after(dsn: str) -> None:
    """pg-boss 12: a job blocked by its flow parent is `blocked`, not waiting; a job delayed by startAfter
    is ready from its start_after on (pg-boss's readyOldestSeconds: GREATEST(created_on, start_after)); a
    job failed for good is live and counted as pg-boss's own getQueueStats().failedCount counts it
    (node_modules/pg-boss12/dist/plans.js: LIVE_STATES = created, retry, active, failed; index job_i14),
    without `count_finished`."""
    ids = node("pg_boss12.mjs", dsn, "pgboss12")
    reading = await collect(dsn, "    queues:\n      - preset: pg-boss\n        schema: pgboss12\n")
    ready = value(dsn, f"SELECT extract(epoch FROM created_on)::float8 FROM pgboss12.job WHERE id = '{ids['ready']}'")
    delayed = value(dsn, "SELECT extract(epoch FROM created_on)::float8 FROM pgboss12.job "
                         f"WHERE id = '{ids['due']}'")
    assert delayed < ready  # type: ignore[operator]
    states = ("created", "retry", "blocked", "deferred", "active", "failed")

    def jobs(*counts: int) -> tuple[tuple[str, int], ...]:
        return tuple(zip(states, counts, strict=True))

    parent = value(dsn, "SELECT extract(epoch FROM created_on)::float8 FROM pgboss12.job "
                        f"WHERE id = '{ids['refs']['parent']}'")  # type: ignore[index]
    assert ids["failedCount"] == 1  # `failed` below is jobqueue_failed_jobs
    assert by_queue(reading.queues) == {
        "done": QueueStats("done", 0, "", None, jobs(0, 0, 0, 0, 0, 1), ids["failedCount"],  # type: ignore[arg-type]
                           completed_last_hour=1),
        "emails": QueueStats("emails", 2, "", ready, jobs(2, 0, 0, 1, 0, 0), 0,  # type: ignore[arg-type]
                             completed_last_hour=0),
        "flows": QueueStats("flows", 1, "", parent, jobs(1, 0, 1, 0, 0, 0), 0,  # type: ignore[arg-type]
                            completed_last_hour=0),
    }
    assert finished(reading)["done"] == {"window_seconds": 3600.0, "completed": 1, "failed": 1, "cancelled": 0}
    history = await collect(dsn, "    queues:\n      - preset: pg-boss\n        schema: pgboss12\n"
                                 "        count_finished: true\n")
    assert by_queue(history.queues)["done"].states == (*jobs(0, 0, 0, 0, 0, 1), ("completed", 1), ("cancelled", 0))
    assert by_queue(history.queues)["done"].failed == 1


async def test_pg_boss_9_is_refused_with_the_version_it_needs(dsn: str) -> None:
    node("pg_boss9.js", dsn, "pgboss9")
    reading = await collect(dsn, "    queues:\n      - preset: pg-boss\n        schema: pgboss9\n")
    assert reading.queues == ()
    assert query_error(reading, "pg-boss") == ("pg-boss schema version 20 (pg-boss 9 or older): the preset needs "
                                               "pg-boss 10 or later (schema version >= 21)")
    assert series(reading, "jobqueue_postgres_query_up")[("pg-boss",)] == 0


GRAPHILE_STATES = ("ready", "scheduled", "retry", "blocked", "locked", "lock_expired", "failed")


def graphile(*counts: int) -> tuple[tuple[str, int], ...]:
    return tuple(zip(GRAPHILE_STATES, counts, strict=True))


async def test_graphile_worker_real_library(dsn: str) -> None:
    node("pg_graphile.js", dsn)
    reading = await collect(dsn, "    queues:\n      - preset: graphile-worker\n")
    oldest = value(dsn, "SELECT extract(epoch FROM min(run_at))::float8 FROM graphile_worker.jobs "
                        "WHERE task_identifier = 'send_email' AND run_at <= now()")
    assert by_queue(reading.queues) == {
        "flaky": QueueStats("flaky", 0, "", None, graphile(0, 0, 1, 0, 0, 0, 1), 1),
        "send_email": QueueStats("send_email", 2, "", oldest, graphile(2, 1, 0, 0, 0, 0, 0), 0),  # type: ignore[arg-type]
    }
    assert series(reading, "jobqueue_workers") == {("", "", "busy"): 0}
    # A worker that crashed holding a job leaves it locked: it is neither ready nor failed.
    run_sql(dsn, "UPDATE graphile_worker._private_jobs SET locked_at = now(), locked_by = 'crashed' "
                 "WHERE id = (SELECT min(id) FROM graphile_worker.jobs WHERE task_identifier = 'send_email')")
    by_name = await collect(dsn, "    queues:\n      - preset: graphile-worker\n        queue_by: queue_name\n")
    assert {q.queue: (q.depth, q.states) for q in by_name.queues} == {
        "": (0, graphile(0, 1, 1, 0, 0, 0, 1)),
        "mail": (1, graphile(1, 0, 0, 0, 1, 0, 0)),
    }
    assert series(by_name, "jobqueue_workers") == {("", "", "busy"): 1}
    assert "finished" not in by_name.details and not finished(by_name)  # graphile-worker deletes completed jobs


async def test_graphile_worker_ready_is_what_get_jobs_would_take() -> None:
    """graphile-worker's getJobs (node_modules/graphile-worker/dist/sql/getJobs.js) takes a job only
    when `jobs.is_available` (unlocked, attempts left), due, and its named queue's
    `job_queues.is_available`: a due job behind a queue a running job holds is `blocked`; a lock
    older than 4 h (dist/sql/resetLockedAt.js frees it) is `lock_expired`; neither is ready."""
    with scratch_database() as db:  # a graphile_worker schema of its own
        holder = await asyncio.create_subprocess_exec("node", str(NODE / "pg_graphile_hold.js"), db,
                                                      stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert holder.stdin is not None and holder.stdout is not None
        try:
            async def held() -> bytes:  # the runner logs to stdout too
                async for line in holder.stdout:  # type: ignore[union-attr]
                    if line.startswith(b"{"):
                        return line
                return b""

            assert json.loads(await asyncio.wait_for(held(), 60)) == {"held": True}
            body = "    queues:\n      - preset: graphile-worker\n        queue_by: queue_name\n"
            reading = await collect(db, body)
            assert {q.queue: (q.depth, q.states) for q in reading.queues} == {
                "": (1, graphile(1, 0, 0, 0, 0, 0, 0)),  # no named queue: the runner (concurrency 1) is busy
                "serial": (0, graphile(0, 0, 0, 1, 1, 0, 0)),  # the second waits behind the first's queue lock
            }
            assert series(reading, "jobqueue_workers") == {("", "", "busy"): 1}
            # a worker that died 5 hours ago holding the job of no queue
            run_sql(db, "UPDATE graphile_worker._private_jobs SET locked_at = now() - interval '5 hours', "
                        "locked_by = 'gone' WHERE job_queue_id IS NULL")
            stale = await collect(db, body)
            assert {q.queue: (q.depth, q.states) for q in stale.queues}[""] == (0, graphile(0, 0, 0, 0, 0, 1, 0))
        finally:
            holder.stdin.close()
            try:
                await asyncio.wait_for(holder.wait(), 30)
            except TimeoutError:
                holder.kill()
                await asyncio.wait_for(holder.wait(), 10)


async def test_procrastinate_real_library_and_worker(dsn: str) -> None:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))
    started, release = asyncio.Event(), asyncio.Event()

    @app.task(queue="emails", name="send")
    async def send(n: int) -> None: ...

    @app.task(queue="flaky", name="flaky")
    async def flaky(n: int) -> None:
        raise RuntimeError("boom")

    @app.task(queue="done", name="done")
    async def done(n: int) -> None: ...

    @app.task(queue="slow", name="slow")
    async def slow() -> None:
        started.set()
        await release.wait()

    body = "    queues:\n      - preset: procrastinate\n"
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        await flaky.defer_async(n=1)
        await done.defer_async(n=1)
        await app.run_worker_async(queues=["flaky", "done"], wait=False)
        await send.defer_async(n=1)
        await send.defer_async(n=2)
        await send.configure(schedule_in={"hours": 1}).defer_async(n=3)
        await slow.defer_async()
        worker = asyncio.create_task(app.run_worker_async(queues=["slow"], wait=False, concurrency=2))
        await asyncio.wait_for(started.wait(), 30)
        busy = await collect(dsn, body)
        release.set()
        await asyncio.wait_for(worker, 30)
    reading = await collect(dsn, body)
    first = value(dsn, "SELECT extract(epoch FROM min(e.at))::float8 FROM procrastinate_events e "
                       "JOIN procrastinate_jobs j ON j.id = e.job_id WHERE j.queue_name = 'emails' "
                       "AND e.type = 'deferred' AND j.scheduled_at IS NULL")
    live = ("todo", "scheduled", "blocked", "doing", "stalled")
    assert by_queue(busy.queues)["slow"] == QueueStats("slow", 0, "", None, (("todo", 0), ("scheduled", 0),
                                                                             ("blocked", 0), ("doing", 1),
                                                                             ("stalled", 0)), None)
    assert series(busy, "jobqueue_workers") == {("", "", "busy"): 1, ("", "", "idle"): 0}
    assert series(reading, "jobqueue_workers") == {("", "", "busy"): 0, ("", "", "idle"): 0}  # unregistered
    assert by_queue(reading.queues) == {  # finished jobs are not read by default: no queue `done` or `flaky`
        "emails": QueueStats("emails", 2, "", first, tuple(zip(live, (2, 1, 0, 0, 0), strict=True)), None),  # type: ignore[arg-type]
    }
    history = await collect(dsn, body + "        count_finished: true\n")
    states = (*live, "succeeded", "failed", "cancelled", "aborted")

    def jobs(*counts: int) -> tuple[tuple[str, int], ...]:
        return tuple(zip(states, counts, strict=True))

    assert by_queue(history.queues) == {
        "done": QueueStats("done", 0, "", None, jobs(0, 0, 0, 0, 0, 1, 0, 0, 0), 0),
        "emails": QueueStats("emails", 2, "", first, jobs(2, 1, 0, 0, 0, 0, 0, 0, 0), 0),  # type: ignore[arg-type]
        "flaky": QueueStats("flaky", 0, "", None, jobs(0, 0, 0, 0, 0, 0, 1, 0, 0), 1),
        "slow": QueueStats("slow", 0, "", None, jobs(0, 0, 0, 0, 0, 1, 0, 0, 0), 0),
    }


async def test_procrastinate_blocked_by_a_lock_and_stalled_by_heartbeat() -> None:
    """Procrastinate's own definitions: procrastinate_fetch_job_v2 (procrastinate/sql/schema.sql)
    rejects a `todo` job whose `lock` a `doing` job holds (a worker with a free slot leaves it), so
    it is `blocked`, not ready; select_stalled_jobs_by_heartbeat (procrastinate/sql/queries.sql,
    JobManager.get_stalled_jobs, 30 s by default) calls a `doing` job of a worker without a recent
    heartbeat stalled, and so does the preset."""
    with scratch_database() as db:
        app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=db))
        started, release = asyncio.Event(), asyncio.Event()

        @app.task(queue="serial", name="hold")
        async def hold(n: int) -> None:
            started.set()
            await release.wait()

        @app.task(queue="lost", name="lost")
        async def lost() -> None: ...

        body = "    queues:\n      - preset: procrastinate\n"
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            await hold.configure(lock="L").defer_async(n=1)
            await hold.configure(lock="L").defer_async(n=2)
            # a job fetched by a worker that then stopped sending heartbeats (library functions)
            await lost.defer_async()
            with admin(db) as conn:
                worker = conn.execute("SELECT procrastinate_register_worker_v1()").fetchone()[0]  # type: ignore[index]
                conn.execute("SELECT procrastinate_fetch_job_v2(ARRAY['lost']::varchar[], %s)", (worker,))
                conn.execute("UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 minute' "
                             "WHERE id = %s", (worker,))
            stalled = [job.id for job in await app.job_manager.get_stalled_jobs()]
            running = asyncio.create_task(app.run_worker_async(queues=["serial"], wait=False, concurrency=2))
            try:
                await asyncio.wait_for(started.wait(), 30)
                reading = await collect(db, body)
            finally:
                release.set()
                await asyncio.wait_for(running, 30)
        assert len(stalled) == 1
        states = ("todo", "scheduled", "blocked", "doing", "stalled")
        assert {q.queue: (q.depth, q.states) for q in reading.queues} == {
            "lost": (0, tuple(zip(states, (0, 0, 0, 0, 1), strict=True))),
            "serial": (0, tuple(zip(states, (0, 0, 1, 1, 0), strict=True))),
        }
        assert series(reading, "jobqueue_workers") == {("", "", "busy"): 1, ("", "", "idle"): 0}


RIVER_STATES = ("available", "pending", "scheduled", "overdue", "running", "retryable")


async def test_river(dsn: str) -> None:
    run_sql(dsn, "CREATE SCHEMA river;" + RIVER.format(s="river") + """
INSERT INTO river.river_job (kind, queue, state, scheduled_at, finalized_at) VALUES
  ('email', 'default', 'available', '2026-01-01 00:00:00+00', NULL),
  ('email', 'default', 'available', '2026-01-02 00:00:00+00', NULL),
  ('email', 'default', 'running', '2025-01-01 00:00:00+00', NULL),
  ('email', 'default', 'discarded', '2025-01-01 00:00:00+00', now() - interval '10 minutes'),
  ('email', 'default', 'discarded', '2025-01-01 00:00:00+00', now() - interval '2 hours'),
  ('email', 'default', 'retryable', now() + interval '1 minute', NULL),
  ('email', 'default', 'retryable', now() - interval '5 minutes', NULL),
  ('pdf', 'bulk', 'scheduled', now() + interval '1 day', NULL),
  ('pdf', 'bulk', 'scheduled', now() - interval '30 seconds', NULL),
  ('pdf', 'bulk', 'scheduled', now() - interval '10 minutes', NULL),
  ('pdf', 'bulk', 'completed', '2025-01-01 00:00:00+00', now() - interval '1 minute'),
  ('pdf', 'bulk', 'cancelled', '2025-01-01 00:00:00+00', now() - interval '1 minute');
INSERT INTO river.river_queue (name, paused_at) VALUES ('default', NULL), ('bulk', now()), ('idle', NULL);
""")
    reading = await collect(dsn, "    queues:\n      - preset: river\n        schema: river\n")

    def jobs(*counts: int) -> tuple[tuple[str, int], ...]:
        return tuple(zip(RIVER_STATES, counts, strict=True))

    assert by_queue(reading.queues) == {
        "bulk": QueueStats("bulk", 0, "", None, jobs(0, 0, 2, 1, 0, 0), None, None, True, 1),
        "default": QueueStats("default", 2, "", 1767225600.0, jobs(2, 0, 0, 1, 1, 1), None, None, False, 0),
        "idle": QueueStats("idle", 0, "", None, jobs(0, 0, 0, 0, 0, 0), None, None, False, 0),
    }
    window = {"window_seconds": 3600.0, "completed": 0, "failed": 0, "cancelled": 0}
    assert finished(reading) == {"bulk": {**window, "completed": 1, "cancelled": 1}, "default": {**window, "failed": 1},
                                 "idle": window}
    assert series(reading, "jobqueue_postgres_schedulers") == {("river",): 0}  # no leader: overdue jobs pile up
    run_sql(dsn, "INSERT INTO river.river_leader (elected_at, expires_at, leader_id) "
                 "VALUES (now(), now() + interval '15 seconds', 'client-1')")
    history = await collect(dsn, "    queues:\n      - preset: river\n        schema: river\n"
                                 "        count_finished: true\n        overdue_after: 1s\n")
    assert series(history, "jobqueue_postgres_schedulers") == {("river",): 1}
    assert by_queue(history.queues)["bulk"].states == (*jobs(0, 0, 1, 2, 0, 0), ("completed", 1), ("cancelled", 1),
                                                       ("discarded", 0))
    assert by_queue(history.queues)["default"].failed == 2
    # a window other than 3600 s is not "the last hour": its counts are series, completed_last_hour stays null
    wide = await collect(dsn, "    queues:\n      - preset: river\n        schema: river\n"
                              "        finished_window: 3h\n")
    assert {q.queue: q.completed_last_hour for q in wide.queues} == {"bulk": None, "default": None, "idle": None}
    assert finished(wide)["default"] == {"window_seconds": 10800.0, "completed": 0, "failed": 2, "cancelled": 0}


async def test_river_before_migration_004_is_refused(dsn: str) -> None:
    run_sql(dsn, "CREATE SCHEMA river_old;" + RIVER_003.format(s="river_old"))
    reading = await collect(dsn, "    queues:\n      - preset: river\n        schema: river_old\n")
    assert query_error(reading, "river") == ("River migration 3: the preset needs River migration 004 or later "
                                             "(`river migrate-up`)")


async def test_river_migrated_while_running_is_probed_again(dsn: str) -> None:
    """A refused schema is probed again at the next collection: migrating fixes the preset without a restart."""
    run_sql(dsn, "CREATE SCHEMA river_up;" + RIVER_003.format(s="river_up"))
    source = make_source(dsn, "    queues:\n      - preset: river\n        schema: river_up\n")
    try:
        before = await source.collect()
        run_sql(dsn, "DROP SCHEMA river_up CASCADE; CREATE SCHEMA river_up;" + RIVER.format(s="river_up")
                + "INSERT INTO river_up.river_job (kind, queue) VALUES ('k', 'default');")
        after = await source.collect()
    finally:
        await source.close()
    assert query_error(before, "river") is not None and query_error(after, "river") is None
    assert [(q.queue, q.depth) for q in after.queues] == [("default", 1)]


async def test_oban_13_without_the_suspended_state(dsn: str) -> None:
    """Oban migration 13 has no `suspended` enum value (v14 adds it): the statement names only the states there."""
    run_sql(dsn, "CREATE SCHEMA oban13;" + OBAN.format(s="oban13", version=13).replace(", 'suspended'", "")
            + "INSERT INTO oban13.oban_jobs (worker, queue) VALUES ('W', 'default');")
    reading = await collect(dsn, "    queues:\n      - preset: oban\n        schema: oban13\n")
    assert query_error(reading, "oban") is None
    assert [(q.queue, q.depth, q.states[-1]) for q in reading.queues] == [("default", 1, ("suspended", 0))]


OBAN_STATES = ("available", "scheduled", "overdue", "executing", "retryable", "suspended")


async def test_oban_utc_timestamps(dsn: str) -> None:
    run_sql(dsn, "CREATE SCHEMA oban;" + OBAN.format(s="oban", version=14) + """
INSERT INTO oban.oban_jobs (worker, queue, state, scheduled_at, discarded_at) VALUES
  ('Mailer', 'mailers', 'available', '2026-01-01 00:00:00', NULL),
  ('Mailer', 'mailers', 'available', '2026-03-01 00:00:00', NULL),
  ('Mailer', 'mailers', 'executing', '2025-01-01 00:00:00', NULL),
  ('Mailer', 'mailers', 'discarded', '2025-01-01 00:00:00', timezone('UTC', now()) - interval '5 minutes'),
  ('Mailer', 'mailers', 'discarded', '2025-01-01 00:00:00', '2025-01-01 00:00:00'),
  ('Mailer', 'mailers', 'completed', '2025-01-01 00:00:00', NULL),
  ('Report', 'reports', 'scheduled', '2030-01-01 00:00:00', NULL),
  ('Report', 'reports', 'scheduled', timezone('UTC', now()) - interval '10 minutes', NULL);
""")
    reading = await collect(dsn, "    queues:\n      - preset: oban\n        schema: oban\n")

    def jobs(*counts: int) -> tuple[tuple[str, int], ...]:
        return tuple(zip(OBAN_STATES, counts, strict=True))

    assert by_queue(reading.queues) == {  # completed_last_hour None: Oban indexes no completion time
        "mailers": QueueStats("mailers", 2, "", 1767225600.0, jobs(2, 0, 0, 1, 0, 0), None),
        "reports": QueueStats("reports", 0, "", None, jobs(0, 1, 1, 0, 0, 0), None),
    }
    assert finished(reading) == {"mailers": {"window_seconds": 3600.0, "failed": 1, "cancelled": 0},
                                 "reports": {"window_seconds": 3600.0, "failed": 0, "cancelled": 0}}
    assert series(reading, "jobqueue_postgres_schedulers") == {("oban",): 0}
    run_sql(dsn, "INSERT INTO oban.oban_peers VALUES ('Oban', 'web-1', timezone('UTC', now()), "
                 "timezone('UTC', now()) + interval '30 seconds')")
    history = await collect(dsn, "    queues:\n      - preset: oban\n        schema: oban\n"
                                 "        count_finished: true\n")
    assert series(history, "jobqueue_postgres_schedulers") == {("oban",): 1}
    assert by_queue(history.queues)["mailers"] == QueueStats("mailers", 2, "", 1767225600.0, (
        ("available", 2), ("scheduled", 0), ("overdue", 0), ("executing", 1), ("retryable", 0), ("completed", 1),
        ("discarded", 2), ("cancelled", 0), ("suspended", 0)), 2)


async def test_oban_before_migration_13_is_refused(dsn: str) -> None:
    run_sql(dsn, "CREATE SCHEMA oban_old;" + OBAN.format(s="oban_old", version=12))
    reading = await collect(dsn, "    queues:\n      - preset: oban\n        schema: oban_old\n")
    assert query_error(reading, "oban") == ("Oban migration 12: the preset needs Oban migration 13 or later "
                                            "(`Oban.Migration.up(version: 13)`)")


async def test_good_job_scopes_workers_and_window(dsn: str) -> None:
    run_sql(dsn, "CREATE SCHEMA gj;" + GOOD_JOB.format(s="gj") + """
INSERT INTO gj.good_job_processes (id, updated_at) VALUES
  ('00000000-0000-0000-0000-000000000001', timezone('UTC', now())),
  ('00000000-0000-0000-0000-000000000002', timezone('UTC', now()) - interval '1 minute'),
  ('00000000-0000-0000-0000-000000000003', timezone('UTC', now()) - interval '10 minutes');
INSERT INTO gj.good_jobs (queue_name, scheduled_at, created_at, performed_at, finished_at, error, executions_count,
                          locked_by_id)
VALUES ('default', '2026-01-01 00:00:00', '2025-12-31 00:00:00', NULL, NULL, NULL, 0, NULL),
       ('default', NULL, '2026-01-01 00:00:30', NULL, NULL, NULL, 0, NULL),
       ('default', '2099-01-01 00:00:00', '2026-01-01 00:00:00', NULL, NULL, NULL, 0, NULL),
       ('default', '2099-01-01 00:00:00', '2026-01-01 00:00:00', NULL, NULL, 'Timeout', 2, NULL),
       ('default', '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:01:00', NULL, NULL, 1,
        '00000000-0000-0000-0000-000000000001'),
       ('default', '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:01:00', '2026-01-01 00:02:00', NULL, 1,
        NULL),
       ('default', '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:01:00', '2026-01-01 00:02:00', 'x', 3,
        NULL),
       ('mail', '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:01:00',
        timezone('UTC', now()) - interval '3 minutes', NULL, 1, NULL),
       ('mail', '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:01:00',
        timezone('UTC', now()) - interval '4 minutes', 'boom', 1, NULL);
UPDATE gj.good_jobs SET serialized_params = jsonb_build_object('executions', executions_count);
""")
    reading = await collect(dsn, "    queues:\n      - preset: good_job\n        schema: gj\n")
    live = (("queued", 2), ("scheduled", 1), ("retried", 1), ("running", 1))
    assert by_queue(reading.queues) == {
        "default": QueueStats("default", 2, "", 1767225600.0, live, None, completed_last_hour=0),
        # seen only by the finished window (no live job): one series, with its completions of the hour
        "mail": QueueStats("mail", 0, "", None, (("queued", 0), ("scheduled", 0), ("retried", 0), ("running", 0)),
                           None, completed_last_hour=1),
    }
    assert finished(reading) == {"default": {"window_seconds": 3600.0, "completed": 0, "failed": 0},
                                 "mail": {"window_seconds": 3600.0, "completed": 1, "failed": 1}}
    assert series(reading, "jobqueue_workers") == {("", "", "busy"): 1, ("", "", "idle"): 1}  # the third expired
    history = await collect(dsn, "    queues:\n      - preset: good_job\n        schema: gj\n"
                                 "        count_finished: true\n")
    assert by_queue(history.queues)["default"] == QueueStats("default", 2, "", 1767225600.0, (
        *live, ("succeeded", 1), ("discarded", 1)), 1, completed_last_hour=0)


async def test_good_job_first_retry_is_scheduled_as_good_job_counts_it(dsn: str) -> None:
    """good_job's own scopes (app/models/good_job/job.rb): `scheduled` is
    `params_execution_count.lt(2)` and `retried` is `.gt(1)`, on ActiveJob's `executions` in
    serialized_params, which ActiveJob has already raised for the first run when a retry is enqueued:
    a job waiting for its first retry (executions 1) is still `scheduled`. A value that is not a
    number must not fail the statement (it reads as 0)."""
    run_sql(dsn, "CREATE SCHEMA gj3;" + GOOD_JOB.format(s="gj3") + """
INSERT INTO gj3.good_jobs (queue_name, scheduled_at, created_at, serialized_params, executions_count)
SELECT 'q', '2099-01-01 00:00:00', '2026-01-01 00:00:00', jsonb_build_object('executions', e), e
FROM unnest(ARRAY[0, 1, 1, 2, 3]) e;
INSERT INTO gj3.good_jobs (queue_name, scheduled_at, created_at, serialized_params, executions_count)
VALUES ('q', '2099-01-01 00:00:00', '2026-01-01 00:00:00', '{"executions": "x"}', 0),
       ('q', NULL, '2099-01-01 00:00:00', '{"executions": 0}', 0);
""")
    reading = await collect(dsn, "    queues:\n      - preset: good_job\n        schema: gj3\n")
    assert query_error(reading, "good_job") is None
    # scheduled: executions 0, 1, 1, "x" and the one whose created_at is ahead (scheduled_at NULL)
    assert by_queue(reading.queues)["q"].states == (("queued", 0), ("scheduled", 5), ("retried", 2), ("running", 0))


async def test_good_job_without_executions_count_is_refused(dsn: str) -> None:
    run_sql(dsn, "CREATE SCHEMA gj_old;" + GOOD_JOB.format(s="gj_old")
            + "ALTER TABLE gj_old.good_jobs DROP COLUMN executions_count;")
    reading = await collect(dsn, "    queues:\n      - preset: good_job\n        schema: gj_old\n")
    assert query_error(reading, "good_job") == ("good_job: good_jobs lacks executions_count: the preset needs "
                                                "good_job 4.0 or later (`rails g good_job:update` and migrate)")


async def test_solid_queue_executions_pauses_processes(dsn: str) -> None:
    run_sql(dsn, "CREATE SCHEMA sq;" + SOLID_QUEUE.format(s="sq") + """
INSERT INTO sq.solid_queue_jobs (id, queue_name, class_name, finished_at) VALUES
  (1, 'default', 'A', NULL), (2, 'default', 'A', NULL), (3, 'default', 'A', NULL), (4, 'mail', 'B', NULL),
  (5, 'mail', 'B', NULL), (6, 'mail', 'B', NULL), (7, 'mail', 'B', NULL),
  (8, 'default', 'A', timezone('UTC', now()) - interval '2 minutes'), (9, 'default', 'A', '2026-01-01'),
  (10, 'default', 'A', NULL);
INSERT INTO sq.solid_queue_processes (id, kind, last_heartbeat_at, pid, created_at, name, metadata) VALUES
  (1, 'Worker', timezone('UTC', now()), 10, now(), 'worker-1', '{"queues":"*","thread_pool_size":3}'),
  (2, 'Worker', timezone('UTC', now()) - interval '1 minute', 11, now(), 'worker-2',
   '{"queues":"mail","thread_pool_size":5}'),
  (3, 'Worker', timezone('UTC', now()) - interval '6 minutes', 12, now(), 'worker-3', '{"thread_pool_size":7}'),
  (4, 'Dispatcher', timezone('UTC', now()) - interval '10 minutes', 13, now(), 'dispatcher-1', NULL);
-- a claim of the expired worker-3 (past process_alive_threshold): `orphaned`, not claimed, not a busy slot
INSERT INTO sq.solid_queue_claimed_executions (job_id, process_id, created_at) VALUES (10, 3, now());
INSERT INTO sq.solid_queue_ready_executions (job_id, queue_name, created_at) VALUES
  (1, 'default', '2026-01-01 00:00:00'), (2, 'default', '2026-01-01 00:00:09');
INSERT INTO sq.solid_queue_claimed_executions (job_id, process_id, created_at) VALUES (3, 1, now());
INSERT INTO sq.solid_queue_scheduled_executions (job_id, queue_name, scheduled_at, created_at)
  VALUES (4, 'mail', '2099-01-01', now()), (7, 'mail', timezone('UTC', now()) - interval '5 minutes', now());
INSERT INTO sq.solid_queue_blocked_executions (job_id, queue_name, concurrency_key, expires_at, created_at)
  VALUES (5, 'mail', 'k', now(), now());
INSERT INTO sq.solid_queue_failed_executions (job_id, error, created_at) VALUES (6, 'boom', timezone('UTC', now()));
INSERT INTO sq.solid_queue_pauses (queue_name, created_at) VALUES ('mail', now());
""")
    reading = await collect(dsn, "    queues:\n      - preset: solid_queue\n        schema: sq\n")
    assert by_queue(reading.queues) == {
        "default": QueueStats("default", 2, "", 1767225600.0, (("ready", 2), ("scheduled", 0), ("overdue", 0),
                                                                 ("claimed", 1), ("orphaned", 1), ("blocked", 0),
                                                                 ("failed", 0)), 0, None, False, 1),
        "mail": QueueStats("mail", 0, "", None, (("ready", 0), ("scheduled", 1), ("overdue", 1), ("claimed", 0),
                                                   ("orphaned", 0), ("blocked", 1), ("failed", 1)), 1, None, True, 0),
    }
    assert finished(reading) == {"default": {"window_seconds": 3600.0, "completed": 1, "failed": 0},
                                 "mail": {"window_seconds": 3600.0, "completed": 0, "failed": 1}}
    assert series(reading, "jobqueue_workers") == {("", "", "busy"): 1, ("", "", "idle"): 1}  # worker-3 expired
    assert series(reading, "jobqueue_worker_capacity") == {("", ""): 8}
    assert series(reading, "jobqueue_worker_busy_slots") == {("", ""): 1}
    assert series(reading, "jobqueue_postgres_schedulers") == {("solid_queue",): 0}  # the dispatcher is silent
    assert series(reading, "jobqueue_jobs_finished_window") == {
        ("", "default", "completed", "3600s"): 1, ("", "default", "failed", "3600s"): 0,
        ("", "mail", "completed", "3600s"): 0, ("", "mail", "failed", "3600s"): 1}


async def test_solid_queue_claims_of_dead_processes_and_malformed_metadata(dsn: str) -> None:
    """Solid Queue: a claimed execution whose process is gone (ClaimedExecution.orphaned, app/models/
    solid_queue/claimed_execution.rb) or past process_alive_threshold (Process.prunable, app/models/
    solid_queue/process/prunable.rb: the supervisor prunes it) is `orphaned`: no worker runs it now.
    A live worker whose metadata (SolidQueue::Worker#metadata, JSON text) cannot be read is counted as
    malformed and never fails the preset."""
    run_sql(dsn, "CREATE SCHEMA sq6;" + SOLID_QUEUE.format(s="sq6") + """
INSERT INTO sq6.solid_queue_jobs (id, queue_name, class_name) VALUES (1, 'q', 'A'), (2, 'q', 'A'), (3, 'q', 'A');
INSERT INTO sq6.solid_queue_processes (id, kind, last_heartbeat_at, pid, created_at, name, metadata) VALUES
  (1, 'Worker', timezone('UTC', now()), 10, now(), 'alive', '{"queues":"*","thread_pool_size":3}'),
  (2, 'Worker', timezone('UTC', now()) - interval '5 minutes 1 second', 11, now(), 'dead', '{"thread_pool_size":5}'),
  (3, 'Worker', timezone('UTC', now()), 12, now(), 'cut', '{"queues":"*","thread_pool_size":'),
  (4, 'Worker', timezone('UTC', now()), 13, now(), 'text', 'thread_pool_size=4'),
  (5, 'Worker', timezone('UTC', now()), 14, now(), 'string', '{"thread_pool_size":"many"}');
-- claimed by the live worker, by the worker past the threshold, by a process already deleted
INSERT INTO sq6.solid_queue_claimed_executions (job_id, process_id, created_at) VALUES (1, 1, now()), (2, 2, now()),
  (3, 99, now());
""")
    reading = await collect(dsn, "    queues:\n      - preset: solid_queue\n        schema: sq6\n")
    assert query_error(reading, "solid_queue") is None
    assert dict(by_queue(reading.queues)["q"].states) == {"ready": 0, "scheduled": 0, "overdue": 0, "claimed": 1,
                                                          "orphaned": 2, "blocked": 0, "failed": 0}
    assert series(reading, "jobqueue_worker_capacity") == {("", ""): 3}
    assert reading.malformed == 3  # cut, text, string
    assert series(reading, "jobqueue_workers") == {("", "", "busy"): 1, ("", "", "idle"): 3}


async def test_solid_queue_without_its_tables_is_refused(dsn: str) -> None:
    run_sql(dsn, "CREATE SCHEMA sq_old;" + SOLID_QUEUE.format(s="sq_old") + "DROP TABLE sq_old.solid_queue_processes;")
    reading = await collect(dsn, "    queues:\n      - preset: solid_queue\n        schema: sq_old\n")
    error = query_error(reading, "solid_queue")
    assert error is not None and error.startswith("Solid Queue: the preset needs Solid Queue 1.0 or later (tables ")


async def test_all_presets_in_one_collection(dsn: str) -> None:
    """Each preset is one query: a missing table fails only its own preset."""
    reading = await collect(dsn, """    queues:
      - {preset: river, schema: river}
      - {preset: oban, schema: oban}
      - {preset: oban, name: oban_missing, schema: nowhere}
""")
    assert {q.queue for q in reading.queues} == {"bulk", "default", "idle", "mailers", "reports"}
    queries = reading.details["queries"]
    assert (queries["river"]["ok"], queries["oban"]["ok"], queries["oban_missing"]["ok"]) == (True, True, False)
    assert queries["oban_missing"]["error"] == (
        "oban_missing: the library's tables are not there (InvalidSchemaNameError: schema \"nowhere\" does not "
        "exist); is it installed and migrated in this schema?")
