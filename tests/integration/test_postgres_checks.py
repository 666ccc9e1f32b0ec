"""Operator SQL checks, migrations, connection use, tenants and read-only sessions on the shared server.

Every test works in the database this module creates and drops; failures of one check (columns
that do not fit, a statement timeout, permission denied, a write attempt) must leave the rest of
the source exported and the source up.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from exporter.scheduler import Scheduler
from tests.conftest import samples
from tests.support.postgres import admin, collect, make_source, scratch_database


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    with scratch_database() as url:
        with admin(url) as conn:
            conn.execute("""
CREATE TABLE media (id serial PRIMARY KEY, file_name text NOT NULL, status text NOT NULL, job_id int);
INSERT INTO media (file_name, status, job_id) VALUES ('a.mp4', 'processing', NULL), ('b.mp4', 'processing', NULL),
  ('c.mp4', 'processing', 7), ('d.mp4', 'done', 8), ('e.mp4', 'unregistered', NULL);
CREATE TABLE tenants (id int PRIMARY KEY, active boolean NOT NULL);
INSERT INTO tenants VALUES (1, true), (2, true), (30, true), (4, false);
CREATE TABLE secret (x int);
CREATE TABLE schema_migrations (filename text PRIMARY KEY);
INSERT INTO schema_migrations VALUES ('001_init.sql'), ('002_users.sql'), ('000_legacy.sql');
""")
        yield url


def pg(dsn: str, body: str, name: str = "pg") -> str:
    return f"""
sources:
  - name: {name}
    type: postgres
    dsn: {dsn}
    interval: 30s
    timeout: 5s
{body}
"""


CHECKS = """    checks:
      - name: per_status
        sql: SELECT status, count(*) AS n FROM media GROUP BY status
        value: n
        labels: [status]
      - name: stale_processing
        severity: warn
        sql: >-
          SELECT file_name, status, 'job_id is null' AS detail FROM media
          WHERE status = 'processing' AND job_id IS NULL ORDER BY file_name
      - name: unregistered_with_uuid
        severity: info
        sql: SELECT file_name FROM media WHERE status = 'unregistered'
      - name: mismatched
        sql: SELECT count(*) AS total FROM media
        value: n
      - name: slow
        sql: SELECT pg_sleep(2) AS n
        value: n
        timeout: 200ms
      - name: forbidden
        sql: SELECT count(*) AS n FROM secret
        value: n
      - name: writes
        sql: INSERT INTO media (file_name, status) VALUES ('x', 'x') RETURNING id AS n
        value: n
"""


async def test_checks_metrics_and_details(dsn: str, make_scheduler: Callable[[str], Scheduler]) -> None:
    with admin(dsn) as conn:
        role = f"jq_ro_{uuid.uuid4().hex[:8]}"
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT SELECT ON media TO {role}")
    try:
        scheduler = make_scheduler(pg(dsn.replace("postgres@", f"{role}@"), CHECKS + "    connections: false\n"))
        await scheduler.collect_once()
        values = samples(scheduler)
        details = scheduler.snapshot.reading("pg").details["checks"]  # type: ignore[union-attr]
    finally:
        await scheduler.stop()
        with admin(dsn) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
    got = {k: v for k, v in values.items() if k.startswith(("jobqueue_check_up", "jobqueue_check_value",
                                                             "jobqueue_check_rows", "jobqueue_source_up"))}
    assert got == {
        'jobqueue_source_up{source="pg",backend="postgres"}': 1,
        **{f'jobqueue_check_up{{source="pg",check="{c}"}}': 1
           for c in ("per_status", "stale_processing", "unregistered_with_uuid")},
        **{f'jobqueue_check_up{{source="pg",check="{c}"}}': 0 for c in ("mismatched", "slow", "forbidden", "writes")},
        'jobqueue_check_value{source="pg",check="per_status",key="processing"}': 3,
        'jobqueue_check_value{source="pg",check="per_status",key="done"}': 1,
        'jobqueue_check_value{source="pg",check="per_status",key="unregistered"}': 1,
        'jobqueue_check_rows{source="pg",check="per_status",severity=""}': 3,
        'jobqueue_check_rows{source="pg",check="stale_processing",severity="warn"}': 2,
        'jobqueue_check_rows{source="pg",check="unregistered_with_uuid",severity="info"}': 1,
    }
    stale = details["stale_processing"]
    assert {k: stale[k] for k in ("check", "severity", "count", "rows", "error")} == {
        "check": "stale_processing", "severity": "warn", "count": 2, "error": None,
        "rows": [{"file_name": "a.mp4", "status": "processing", "detail": "job_id is null"},
                 {"file_name": "b.mp4", "status": "processing", "detail": "job_id is null"}]}
    assert details["mismatched"]["error"] == "column 'n' not in the result (columns: total)"
    assert details["slow"]["error"] == "statement timeout: no result within 0.2s"
    assert details["forbidden"]["error"] == "permission denied: permission denied for table secret"
    assert details["writes"]["error"] == ("ReadOnlySQLTransactionError: cannot execute INSERT in a read-only "
                                          "transaction")
    assert all(details[c]["rows"] == [] and details[c]["count"] == 0 for c in ("mismatched", "slow", "forbidden"))
    with admin(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM media WHERE file_name = 'x'").fetchone() == (0,)


async def test_failing_check_is_logged_once_without_password(
        dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="jobqueue.postgres")
    source = make_source(dsn, "    password: ${PGPASSWORD}\n    checks:\n"
                              "      - {name: bad, sql: SELECT 1 AS x, value: n}\n", {"PGPASSWORD": "hunter2-secret"})
    try:
        for _ in range(3):
            await source.collect()
    finally:
        await source.close()
    failures = [r for r in caplog.records if r.getMessage() == "check bad failed"]
    assert len(failures) == 1
    assert failures[0].error == "column 'n' not in the result (columns: x)"  # type: ignore[attr-defined]
    assert all("hunter2" not in str(r.__dict__) for r in caplog.records)


async def test_session_is_read_only_and_named(dsn: str) -> None:
    reading = await collect(dsn, """    checks:
      - name: session
        sql: >-
          SELECT application_name AS app, current_setting('transaction_read_only') AS ro,
          current_setting('default_transaction_read_only') AS default_ro, current_setting('TimeZone') AS tz
          FROM pg_stat_activity WHERE pid = pg_backend_pid()
      - name: sneaky_write
        sql: WITH gone AS (DELETE FROM media RETURNING 1) SELECT count(*) AS n FROM gone
        value: n
""")
    assert reading.details["checks"]["session"]["rows"] == [
        {"app": "jobqueue-exporter", "ro": "on", "default_ro": "on", "tz": "UTC"}]
    assert reading.details["checks"]["sneaky_write"]["error"].startswith("ReadOnlySQLTransactionError")
    with admin(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM media").fetchone() == (5,)


async def test_built_in_statements_run_without_parallel_workers(dsn: str) -> None:
    """The exporter's own statements (here the tenants query; presets, probes, migrations alike) plan
    no parallel workers: starting them costs more than these short statements save (pgmq over 500
    queue tables: a Gather serialized its 500-branch plan every cycle, issue 21). An operator's check
    keeps the server's setting: it may scan enough to gain from them."""
    with admin(dsn) as conn:  # this test's own database: a setting its new sessions start with
        database = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(f'ALTER DATABASE "{database}" SET max_parallel_workers_per_gather = 3')
    server = "3"
    reading = await collect(dsn, """    tenants_query: SELECT current_setting('max_parallel_workers_per_gather')
    checks:
      - name: parallel
        sql: SELECT current_setting('max_parallel_workers_per_gather') AS workers
""")
    assert reading.details["tenants"] == ["0"]
    assert reading.details["checks"]["parallel"]["rows"] == [{"workers": server}]


async def test_check_interval_reuses_last_result(dsn: str) -> None:
    source = make_source(dsn, """    checks:
      - {name: hourly, sql: SELECT count(*) AS n FROM tenants, value: n, interval: 1h}
      - {name: every, sql: SELECT count(*) AS n FROM tenants, value: n}
""")
    try:
        first = await source.collect()
        with admin(dsn) as conn:
            conn.execute("INSERT INTO tenants VALUES (99, false)")
        second = await source.collect()
    finally:
        await source.close()
        with admin(dsn) as conn:
            conn.execute("DELETE FROM tenants WHERE id = 99")
    values = [{s.labels[0]: s.value for s in r.samples if s.metric == "jobqueue_check_value"} for r in (first, second)]
    assert values == [{"hourly": 4, "every": 4}, {"hourly": 4, "every": 5}]
    checks = second.details["checks"]
    assert checks["hourly"]["observed_at"] == first.details["checks"]["hourly"]["observed_at"]
    assert checks["every"]["observed_at"] > checks["hourly"]["observed_at"]


async def test_migrations(dsn: str, tmp_path: Path) -> None:
    for name in ("001_init.sql", "002_users.sql", "003_media.sql", "README.md"):
        (tmp_path / name).write_text("-- migration\n")
    body = f"    migrations:\n      directory: {tmp_path}\n"
    reading = await collect(dsn, body)
    metrics = {(s.metric, s.labels): s.value for s in reading.samples if "schema" in s.metric}
    assert metrics == {("jobqueue_schema_migrations", ("applied",)): 3,
                       ("jobqueue_schema_migrations", ("required",)): 3,
                       ("jobqueue_schema_migrations", ("missing",)): 1, ("jobqueue_schema_ok", ()): 0}
    assert reading.details["schema"] == {
        "table_exists": True, "ok": False, "missing": ["003_media.sql"],
        "applied": [{"filename": "000_legacy.sql"}, {"filename": "001_init.sql"}, {"filename": "002_users.sql"}],
        "required": [{"filename": "001_init.sql"}, {"filename": "002_users.sql"}, {"filename": "003_media.sql"}]}
    (tmp_path / "003_media.sql").unlink()
    assert (await collect(dsn, body)).details["schema"]["ok"] is True
    missing = await collect(dsn, body + "      table: nowhere_migrations\n")
    assert {k: missing.details["schema"][k] for k in ("table_exists", "ok", "missing")} == {
        "table_exists": False, "ok": False, "missing": ["001_init.sql", "002_users.sql"]}
    assert missing.details["queries"]["migrations"]["ok"] is True
    gone = tmp_path / "gone"
    gone.mkdir()
    source = make_source(dsn, f"    migrations:\n      directory: {gone}\n")
    gone.rmdir()  # removed after the config was loaded: an error, never "nothing missing"
    try:
        reading = await source.collect()
    finally:
        await source.close()
    assert "schema" not in reading.details
    assert reading.details["queries"]["migrations"] == {
        "ok": False, "duration_seconds": 0.0,
        "error": f"cannot read the migrations directory '{gone}': No such directory"}


async def test_connections_on_the_shared_server(dsn: str) -> None:
    reading = await collect(dsn, "    pool_size: 1\n")
    conns = reading.details["connections"]
    with admin(dsn) as conn:
        row = conn.execute("SHOW max_connections").fetchone()
    assert row is not None and conns["max"] == int(row[0])
    assert conns["by_state"]["active"] >= 1 and conns["in_use"] == sum(conns["by_state"].values())
    assert conns["usage_percent"] == round(conns["in_use"] / conns["max"] * 100, 1)
    assert reading.latency is not None and reading.details["latency_ms"] == round(reading.latency * 1000, 3)
    assert reading.details["postgres"]["dsn"] == dsn.replace("//postgres@", "//***@")  # the whole userinfo is hidden


async def test_tenants_discovered_by_sql_feed_a_redis_source(
        dsn: str, make_scheduler: Callable[[str], Scheduler], redis_client: redis.Redis, prefix: str) -> None:
    for tenant, n in (("1", 2), ("30", 1), ("4", 5)):
        redis_client.rpush(f"{prefix}tenant_{tenant}:events", *[f"job{i}" for i in range(n)])
    text = pg(dsn, "    tenants_query: SELECT id FROM tenants WHERE active ORDER BY id\n") + f"""
  - name: redis
    type: redis
    url: redis://127.0.0.1:6379/0
    tenants: {{source: pg}}
    queues:
      - layout: list
        name: events
        key: "{prefix}tenant_{{tenant}}:events"
"""
    scheduler = make_scheduler(text)
    await scheduler.collect_once()
    await scheduler.collect_once()
    reading = scheduler.snapshot.reading("pg")
    assert reading is not None and reading.details["tenants"] == ["1", "2", "30"]
    values = samples(scheduler)
    assert values['jobqueue_tenants{source="pg"}'] == 3
    assert values['jobqueue_tenants{source="redis"}'] == 3
    depth = {k: v for k, v in values.items() if k.startswith('jobqueue_depth{source="redis"')}
    assert depth == {'jobqueue_depth{source="redis",tenant="1",queue="events"}': 2,
                     'jobqueue_depth{source="redis",tenant="2",queue="events"}': 0,
                     'jobqueue_depth{source="redis",tenant="30",queue="events"}': 1}


async def test_failing_presets_leave_the_rest_exported(dsn: str, make_scheduler: Callable[[str], Scheduler]) -> None:
    with admin(dsn) as conn:
        role = f"jq_ro_{uuid.uuid4().hex[:8]}"
        conn.execute("CREATE TABLE IF NOT EXISTS jobs (status text, created_at timestamptz)")
        conn.execute("CREATE OR REPLACE VIEW slow_jobs AS SELECT status, created_at FROM media, "
                     "LATERAL (SELECT now() AS created_at) c WHERE pg_sleep(0.3) IS NOT NULL")
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT SELECT ON media, slow_jobs TO {role}")
    body = """    queues:
      - {preset: generic, name: media, table: media, waiting: [processing], other: [done], enqueued_column: id,
         enqueued_unit: s}
      - {preset: generic, name: denied, table: jobs, waiting: [new], queue: denied}
      - {preset: generic, name: slow, table: slow_jobs, waiting: [processing], timeout: 200ms, queue: slow}
"""
    try:
        scheduler = make_scheduler(pg(dsn.replace("postgres@", f"{role}@"), body))
        await scheduler.collect_once()
        values = samples(scheduler)
        queries = scheduler.snapshot.reading("pg").details["queries"]  # type: ignore[union-attr]
    finally:
        await scheduler.stop()
        with admin(dsn) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
    got = {k: v for k, v in values.items() if k.startswith(("jobqueue_postgres_query_up", "jobqueue_depth",
                                                             "jobqueue_source_up"))}
    assert got == {
        'jobqueue_source_up{source="pg",backend="postgres"}': 1,
        'jobqueue_depth{source="pg",tenant="",queue="default"}': 3,
        'jobqueue_postgres_query_up{source="pg",query="media"}': 1,
        'jobqueue_postgres_query_up{source="pg",query="denied"}': 0,
        'jobqueue_postgres_query_up{source="pg",query="slow"}': 0,
        'jobqueue_postgres_query_up{source="pg",query="connections"}': 1,
    }
    assert queries["denied"]["error"] == "permission denied: permission denied for table jobs"
    assert queries["slow"]["error"] == "statement timeout: no result within 0.2s"


async def test_read_only_role_recipe(dsn: str) -> None:
    """The role of docs/sources/postgres.md (minus the library schemas this database lacks) is enough."""
    role = f"jq_exp_{uuid.uuid4().hex[:8]}"
    db = dsn.rsplit("/", 1)[1]
    with admin(dsn) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw' CONNECTION LIMIT 4 IN ROLE pg_monitor")
        conn.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
        conn.execute(f'GRANT CONNECT ON DATABASE "{db}" TO {role}')
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        conn.execute(f"GRANT SELECT ON public.media, public.schema_migrations, public.tenants TO {role}")
    try:
        reading = await collect(dsn.replace("postgres@", f"{role}@"), """    tenants_query: SELECT id FROM tenants
    queues:
      - {preset: generic, table: media, waiting: [processing], enqueued_column: id, enqueued_unit: s}
    checks:
      - {name: n, sql: SELECT count(*) AS n FROM media, value: n}
""")
    finally:
        with admin(dsn) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
    assert all(q["ok"] for q in reading.details["queries"].values())
    assert "unknown" not in reading.details["connections"]["by_state"]
    assert reading.details["tenants"] == ["1", "2", "30", "4"]
    assert [(q.queue, q.depth) for q in reading.queues] == [("default", 3)]
