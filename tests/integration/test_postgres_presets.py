"""Every queue preset against the real PostgreSQL, in a database this module creates and drops.

pg-boss and graphile-worker enqueue through the real Node libraries (tests/node/pg_*.js),
Procrastinate through the real Python library; pgmq, River, Oban, good_job and Solid Queue get
their schemas as the libraries' migrations define them (tests/support/postgres.py).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import procrastinate
import pytest

from exporter.model import QueueStats
from tests.support.postgres import (
    GOOD_JOB,
    OBAN,
    PGMQ,
    RIVER,
    SOLID_QUEUE,
    admin,
    collect,
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


def node(script: str, dsn: str) -> dict[str, object]:
    if not (NODE / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--prefix", str(NODE), "--silent", "--no-audit", "--no-fund"], check=True)
    done = subprocess.run(["node", str(NODE / script), dsn], check=True, capture_output=True, text=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1])


def by_queue(queues: tuple[QueueStats, ...]) -> dict[str, QueueStats]:
    return {q.queue: q for q in queues}


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


async def test_pgmq_metrics_all(dsn: str) -> None:
    run_sql(dsn, PGMQ + pgmq_queue("orders") + pgmq_queue("empty") + """
INSERT INTO pgmq.q_orders (enqueued_at, vt, message) VALUES
  (now() - interval '100 seconds', now() - interval '100 seconds', '{}'),
  (now() - interval '50 seconds', now() - interval '50 seconds', '{}'),
  (now() - interval '10 seconds', now() + interval '30 seconds', '{}');
""")
    reading = await collect(dsn, "    queues:\n      - preset: pgmq\n")
    queues = by_queue(reading.queues)
    assert queues["empty"] == QueueStats("empty", 0, "", None, (("visible", 0), ("invisible", 0)))
    orders = queues["orders"]
    assert (orders.depth, orders.states) == (2, (("visible", 2), ("invisible", 1)))
    enqueued = value(dsn, "SELECT extract(epoch FROM min(enqueued_at))::float8 FROM pgmq.q_orders")
    assert orders.oldest_timestamp is not None and abs(orders.oldest_timestamp - enqueued) <= 0.5  # pgmq: whole s


async def test_pg_boss_real_library(dsn: str) -> None:
    node("pg_boss.js", dsn)
    reading = await collect(dsn, "    queues:\n      - preset: pg-boss\n")
    oldest = value(dsn, "SELECT extract(epoch FROM min(created_on))::float8 FROM pgboss.job "
                        "WHERE name = 'emails' AND state = 'created' AND start_after <= now()")
    states = ("created", "retry", "deferred", "active", "completed", "cancelled", "failed")

    def jobs(*counts: int) -> tuple[tuple[str, int], ...]:
        return tuple(zip(states, counts, strict=True))

    assert by_queue(reading.queues) == {
        "emails": QueueStats("emails", 2, "", oldest, jobs(2, 0, 1, 1, 0, 0, 0), 0),  # type: ignore[arg-type]
        "idle": QueueStats("idle", 0, "", None, jobs(0, 0, 0, 0, 0, 0, 0), 0),
        "reports": QueueStats("reports", 1, "", value(dsn, "SELECT extract(epoch FROM min(created_on))::float8 "
                              "FROM pgboss.job WHERE name = 'reports' AND state = 'created'"),  # type: ignore[arg-type]
                              jobs(1, 0, 0, 0, 1, 0, 1), 1),
    }


async def test_graphile_worker_real_library(dsn: str) -> None:
    node("pg_graphile.js", dsn)
    reading = await collect(dsn, "    queues:\n      - preset: graphile-worker\n")
    oldest = value(dsn, "SELECT extract(epoch FROM min(run_at))::float8 FROM graphile_worker.jobs "
                        "WHERE task_identifier = 'send_email' AND run_at <= now()")
    assert by_queue(reading.queues) == {
        "flaky": QueueStats("flaky", 0, "", None, (("ready", 0), ("scheduled", 0), ("retry", 1), ("locked", 0),
                                                     ("failed", 1)), 1),
        "send_email": QueueStats("send_email", 2, "", oldest, (("ready", 2), ("scheduled", 1),  # type: ignore[arg-type]
                                                                ("retry", 0), ("locked", 0), ("failed", 0)), 0),
    }
    # A worker that crashed holding a job leaves it locked: it is neither ready nor failed.
    run_sql(dsn, "UPDATE graphile_worker._private_jobs SET locked_at = now(), locked_by = 'crashed' "
                 "WHERE id = (SELECT min(id) FROM graphile_worker.jobs WHERE task_identifier = 'send_email')")
    by_name = await collect(dsn, "    queues:\n      - preset: graphile-worker\n        queue_by: queue_name\n")
    assert {q.queue: (q.depth, q.states) for q in by_name.queues} == {
        "": (0, (("ready", 0), ("scheduled", 1), ("retry", 1), ("locked", 0), ("failed", 1))),
        "mail": (1, (("ready", 1), ("scheduled", 0), ("retry", 0), ("locked", 1), ("failed", 0))),
    }


async def test_procrastinate_real_library(dsn: str) -> None:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(queue="emails", name="send")
    async def send(n: int) -> None: ...

    @app.task(queue="flaky", name="flaky")
    async def flaky(n: int) -> None:
        raise RuntimeError("boom")

    @app.task(queue="done", name="done")
    async def done(n: int) -> None: ...

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        await flaky.defer_async(n=1)
        await done.defer_async(n=1)
        await app.run_worker_async(queues=["flaky", "done"], wait=False)
        await send.defer_async(n=1)
        await send.defer_async(n=2)
        await send.configure(schedule_in={"hours": 1}).defer_async(n=3)
    reading = await collect(dsn, "    queues:\n      - preset: procrastinate\n")
    first = value(dsn, "SELECT extract(epoch FROM min(e.at))::float8 FROM procrastinate_events e "
                       "JOIN procrastinate_jobs j ON j.id = e.job_id WHERE j.queue_name = 'emails' "
                       "AND e.type = 'deferred' AND j.scheduled_at IS NULL")
    states = ("todo", "scheduled", "doing", "succeeded", "failed", "cancelled", "aborted")

    def jobs(*counts: int) -> tuple[tuple[str, int], ...]:
        return tuple(zip(states, counts, strict=True))

    assert by_queue(reading.queues) == {
        "done": QueueStats("done", 0, "", None, jobs(0, 0, 0, 1, 0, 0, 0), 0),
        "emails": QueueStats("emails", 2, "", first, jobs(2, 1, 0, 0, 0, 0, 0), 0),  # type: ignore[arg-type]
        "flaky": QueueStats("flaky", 0, "", None, jobs(0, 0, 0, 0, 1, 0, 0), 1),
    }


async def test_river(dsn: str) -> None:
    run_sql(dsn, "CREATE SCHEMA river;" + RIVER.format(s="river") + """
INSERT INTO river.river_job (kind, queue, state, scheduled_at) VALUES
  ('email', 'default', 'available', '2026-01-01 00:00:00+00'),
  ('email', 'default', 'available', '2026-01-02 00:00:00+00'),
  ('email', 'default', 'running', '2025-01-01 00:00:00+00'),
  ('email', 'default', 'discarded', '2025-01-01 00:00:00+00'),
  ('email', 'default', 'retryable', now() + interval '1 minute'),
  ('pdf', 'bulk', 'scheduled', now() + interval '1 day'),
  ('pdf', 'bulk', 'completed', '2025-01-01 00:00:00+00');
INSERT INTO river.river_queue (name, paused_at) VALUES ('default', NULL), ('bulk', now()), ('idle', NULL);
""")
    reading = await collect(dsn, "    queues:\n      - preset: river\n        schema: river\n")
    names = ("available", "pending", "scheduled", "running", "retryable", "completed", "cancelled", "discarded")

    def jobs(*counts: int) -> tuple[tuple[str, int], ...]:
        return tuple(zip(names, counts, strict=True))

    assert by_queue(reading.queues) == {
        "bulk": QueueStats("bulk", 0, "", None, jobs(0, 0, 1, 0, 0, 1, 0, 0), 0, None, True),
        "default": QueueStats("default", 2, "", 1767225600.0, jobs(2, 0, 0, 1, 1, 0, 0, 1), 1, None, False),
        "idle": QueueStats("idle", 0, "", None, jobs(0, 0, 0, 0, 0, 0, 0, 0), 0, None, False),
    }


async def test_oban_utc_timestamps(dsn: str) -> None:
    run_sql(dsn, "CREATE SCHEMA oban;" + OBAN.format(s="oban") + """
INSERT INTO oban.oban_jobs (worker, queue, state, scheduled_at) VALUES
  ('Mailer', 'mailers', 'available', '2026-01-01 00:00:00'), ('Mailer', 'mailers', 'available', '2026-03-01 00:00:00'),
  ('Mailer', 'mailers', 'executing', '2025-01-01 00:00:00'), ('Mailer', 'mailers', 'discarded', '2025-01-01 00:00:00'),
  ('Mailer', 'mailers', 'discarded', '2025-01-01 00:00:00'), ('Report', 'reports', 'scheduled', '2030-01-01 00:00:00');
""")
    reading = await collect(dsn, "    queues:\n      - preset: oban\n        schema: oban\n")
    names = ("available", "scheduled", "executing", "retryable", "completed", "discarded", "cancelled", "suspended")

    def jobs(*counts: int) -> tuple[tuple[str, int], ...]:
        return tuple(zip(names, counts, strict=True))

    assert by_queue(reading.queues) == {
        "mailers": QueueStats("mailers", 2, "", 1767225600.0, jobs(2, 0, 1, 0, 0, 2, 0, 0), 2),
        "reports": QueueStats("reports", 0, "", None, jobs(0, 1, 0, 0, 0, 0, 0, 0), 0),
    }


async def test_good_job_scopes(dsn: str) -> None:
    run_sql(dsn, "CREATE SCHEMA gj;" + GOOD_JOB.format(s="gj") + """
INSERT INTO gj.good_jobs (queue_name, scheduled_at, created_at, performed_at, finished_at, error, executions_count)
VALUES ('default', '2026-01-01 00:00:00', '2025-12-31 00:00:00', NULL, NULL, NULL, 0),
       ('default', NULL, '2026-01-01 00:00:30', NULL, NULL, NULL, 0),
       ('default', '2099-01-01 00:00:00', '2026-01-01 00:00:00', NULL, NULL, NULL, 0),
       ('default', '2099-01-01 00:00:00', '2026-01-01 00:00:00', NULL, NULL, 'Timeout', 1),
       ('default', '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:01:00', NULL, NULL, 1),
       ('default', '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:01:00', '2026-01-01 00:02:00', NULL, 1),
       ('default', '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:01:00', '2026-01-01 00:02:00', 'x', 3);
""")
    reading = await collect(dsn, "    queues:\n      - preset: good_job\n        schema: gj\n")
    assert reading.queues == (QueueStats("default", 2, "", 1767225600.0, (
        ("queued", 2), ("scheduled", 1), ("retried", 1), ("running", 1), ("succeeded", 1), ("discarded", 1)), 1),)


async def test_solid_queue_executions_and_pauses(dsn: str) -> None:
    run_sql(dsn, "CREATE SCHEMA sq;" + SOLID_QUEUE.format(s="sq") + """
INSERT INTO sq.solid_queue_jobs (id, queue_name, class_name) VALUES
  (1, 'default', 'A'), (2, 'default', 'A'), (3, 'default', 'A'), (4, 'mail', 'B'), (5, 'mail', 'B'), (6, 'mail', 'B');
INSERT INTO sq.solid_queue_ready_executions (job_id, queue_name, created_at) VALUES
  (1, 'default', '2026-01-01 00:00:00'), (2, 'default', '2026-01-01 00:00:09');
INSERT INTO sq.solid_queue_claimed_executions (job_id, process_id, created_at) VALUES (3, 1, now());
INSERT INTO sq.solid_queue_scheduled_executions (job_id, queue_name, scheduled_at, created_at)
  VALUES (4, 'mail', '2099-01-01', now());
INSERT INTO sq.solid_queue_blocked_executions (job_id, queue_name, concurrency_key, expires_at, created_at)
  VALUES (5, 'mail', 'k', now(), now());
INSERT INTO sq.solid_queue_failed_executions (job_id, error, created_at) VALUES (6, 'boom', now());
INSERT INTO sq.solid_queue_pauses (queue_name, created_at) VALUES ('mail', now());
""")
    reading = await collect(dsn, "    queues:\n      - preset: solid_queue\n        schema: sq\n")
    assert by_queue(reading.queues) == {
        "default": QueueStats("default", 2, "", 1767225600.0, (("ready", 2), ("scheduled", 0), ("claimed", 1),
                                                                 ("blocked", 0), ("failed", 0)), 0, None, False),
        "mail": QueueStats("mail", 0, "", None, (("ready", 0), ("scheduled", 1), ("claimed", 0), ("blocked", 1),
                                                   ("failed", 1)), 1, None, True),
    }


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
        'UndefinedTableError: relation "nowhere.oban_jobs" does not exist')
