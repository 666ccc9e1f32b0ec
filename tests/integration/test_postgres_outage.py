"""PostgreSQL down at start, lost mid-run and restarted, on a throwaway cluster of the test's own.

Also the failures that need a server of our own: password logins (env, file, wrong), a missing
database and the exact connection count. The shared server on 5432 is never stopped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporter.scheduler import Scheduler
from exporter.sources.base import SourceDenied, SourceError, SourceUnreachable, redact_url
from tests.conftest import samples, until
from tests.support.postgres import PgCluster, admin, collect, make_source

UP = 'jobqueue_source_up{source="pg",backend="postgres"}'
UNREACHABLE = 'jobqueue_collect_errors_total{source="pg",kind="unreachable"}'
DEPTH = 'jobqueue_depth{source="pg",tenant="",queue="default"}'
CHECK = 'jobqueue_check_value{source="pg",check="jobs",key=""}'
SETUP = """
CREATE TABLE jobs (id serial, status text NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO jobs (status, created_at) VALUES ('new', '2026-01-01 00:00:00+00'), ('new', '2026-01-02 00:00:00+00'),
  ('failed', '2026-01-01 00:00:00+00');
"""


@pytest.fixture(scope="module")
def own_server() -> Iterator[PgCluster]:
    server = PgCluster().init().start()
    yield server
    server.destroy()


@pytest.fixture
def cluster(own_server: PgCluster) -> Iterator[PgCluster]:
    """The module's own server, running, with a fresh database as its `dsn()` default."""
    if not (own_server.data / "postmaster.pid").exists():
        own_server.start()
    name = f"t_{uuid.uuid4().hex[:8]}"
    with admin(own_server.dsn()) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    with admin(own_server.dsn(name)) as conn:
        conn.execute(SETUP)
    own_server.database = name
    yield own_server
    own_server.database = "postgres"
    if not (own_server.data / "postmaster.pid").exists():
        own_server.start()
    with admin(own_server.dsn()) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def config(cluster: PgCluster, interval: str = "0.3s", timeout: str = "0.25s") -> str:
    return f"""
sources:
  - name: pg
    type: postgres
    dsn: {cluster.dsn()}
    interval: {interval}
    timeout: {timeout}
    connect_timeout: 0.2s
    queues:
      - {{preset: generic, table: jobs, waiting: [new], failed: [failed]}}
    checks:
      - {{name: jobs, sql: SELECT count(*) AS n FROM jobs, value: n}}
"""




def pg_series(values: dict[str, float]) -> list[str]:
    """Series a down source must not export: queue numbers, checks and its own metrics."""
    return [k for k in values if 'source="pg"' in k and k.startswith((
        "jobqueue_depth", "jobqueue_oldest", "jobqueue_jobs", "jobqueue_failed", "jobqueue_check",
        "jobqueue_postgres", "jobqueue_source_latency"))]


async def test_down_at_start_then_started(cluster: PgCluster, make_scheduler: Callable[[str], Scheduler]) -> None:
    cluster.stop()
    scheduler = make_scheduler(config(cluster, "30s", "5s"))
    await scheduler.collect_once()
    values = samples(scheduler)
    assert (values[UP], values[UNREACHABLE]) == (0, 1)
    assert pg_series(values) == []
    status = scheduler.snapshot.sources["pg"].status
    assert status.error_kind == "unreachable" and status.error is not None
    assert status.error.startswith(f"postgres {redact_url(cluster.dsn())} unreachable: ")
    cluster.start()
    await scheduler.collect_once()
    values = samples(scheduler)
    assert (values[UP], values[DEPTH], values[CHECK], values[UNREACHABLE]) == (1, 2, 3, 1)
    assert values['jobqueue_failed_jobs{source="pg",tenant="",queue="default"}'] == 1
    assert values['jobqueue_oldest_timestamp_seconds{source="pg",tenant="",queue="default"}'] == 1767225600


async def test_lost_mid_run_and_back(cluster: PgCluster, make_scheduler: Callable[[str], Scheduler],
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="jobqueue.scheduler")
    scheduler = make_scheduler(config(cluster))
    scheduler.start()
    before = await until(scheduler, lambda v: v.get(UP) == 1)
    assert (before[DEPTH], before[CHECK]) == (2, 3)
    cluster.stop()
    # the first failed cycle may be one the shutdown cut mid-statement (under load: the scheduler's 0.25 s
    # timeout, or asyncpg's InternalClientError "cannot switch to state" from protocol/coreproto.pyx on a
    # connection the fast shutdown left mid-operation); the server being gone reads `unreachable` from
    # the next cycle on, so wait for that condition rather than for the first `up 0`
    down = await until(scheduler, lambda v: v.get(UP) == 0 and v.get(UNREACHABLE, 0) >= 1)
    assert pg_series(down) == [] and down[UNREACHABLE] >= 1
    assert any(r.getMessage() == "collect failed" and r.kind == "unreachable"  # type: ignore[attr-defined]
               for r in caplog.records)
    cluster.start()
    with admin(cluster.dsn()) as conn:
        conn.execute("INSERT INTO jobs (status, created_at) VALUES ('new', now())")
    back = await until(scheduler, lambda v: v.get(UP) == 1)
    assert (back[DEPTH], back[CHECK]) == (3, 4)
    await scheduler.stop()


async def test_restart_between_collections_needs_no_failed_cycle(cluster: PgCluster) -> None:
    source = make_source(cluster.dsn(), "    checks:\n      - {name: jobs, sql: SELECT count(*) AS n FROM jobs, "
                                        "value: n}\n")
    try:
        first = await source.collect()
        cluster.restart()  # every pooled connection is now dead
        second = await source.collect()
    finally:
        await source.close()
    assert [r.details["checks"]["jobs"]["rows"] for r in (first, second)] == [[{"n": 3}], [{"n": 3}]]


async def test_connections_exact_on_own_server(cluster: PgCluster) -> None:
    reading = await collect(cluster.dsn(), "    pool_size: 1\n")
    assert reading.details["connections"] == {"in_use": 1, "max": 20, "usage_percent": 5.0,
                                              "by_state": {"active": 1}}
    values = {(s.metric, s.labels): s.value for s in reading.samples if "connections" in s.metric}
    assert values == {("jobqueue_postgres_connections", ("active",)): 1,
                      ("jobqueue_postgres_max_connections", ()): 20,
                      ("jobqueue_postgres_connections_used_ratio", ()): 0.05}


async def test_missing_database_is_an_error(cluster: PgCluster) -> None:
    with pytest.raises(SourceError) as err:
        await collect(cluster.dsn("nowhere"), "")
    assert type(err.value) is SourceError
    assert str(err.value) == f'postgres {redact_url(cluster.dsn("nowhere"))}: database "nowhere" does not exist'


@pytest.fixture(scope="module")
def secured() -> Iterator[PgCluster]:
    server = PgCluster().init(password="Corr3ct-horse").start()
    yield server
    server.destroy()


async def test_password_from_env_file_and_wrong(secured: PgCluster, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    env = await collect(secured.dsn(), "    password: ${PGPASSWORD}\n", {"PGPASSWORD": "Corr3ct-horse"})
    secret = tmp_path / "pgpass"
    secret.write_text("Corr3ct-horse\n")
    from_file = await collect(secured.dsn(), f"    password_file: {secret}\n")
    assert env.details["connections"]["in_use"] >= 1 and from_file.details["connections"]["in_use"] >= 1
    with pytest.raises(SourceDenied) as err:
        await collect(secured.dsn(), "    password: ${PGPASSWORD}\n", {"PGPASSWORD": "wr0ng-pass"})
    assert str(err.value) == (f"postgres {redact_url(secured.dsn())} refused the exporter: password authentication "
                              'failed for user "postgres"')
    logged = " ".join(str(r.__dict__) for r in caplog.records)
    assert "Corr3ct-horse" not in logged and "wr0ng-pass" not in logged


async def test_role_without_connect_is_denied(cluster: PgCluster) -> None:
    with admin(cluster.dsn()) as conn:
        conn.execute(f"CREATE DATABASE locked_{cluster.database}")
        conn.execute(f"REVOKE CONNECT ON DATABASE locked_{cluster.database} FROM PUBLIC")
        conn.execute("CREATE ROLE outsider LOGIN")
    try:
        with pytest.raises(SourceDenied, match="permission denied for database"):
            await collect(cluster.dsn(f"locked_{cluster.database}").replace("postgres@", "outsider@"), "")
    finally:
        with admin(cluster.dsn()) as conn:
            conn.execute(f"DROP DATABASE locked_{cluster.database}")
            conn.execute("DROP ROLE outsider")


async def test_unreachable_port_is_unreachable() -> None:
    cluster = PgCluster()  # never initialised: nothing listens on its port
    try:
        with pytest.raises(SourceUnreachable):
            await collect(cluster.dsn(), "    connect_timeout: 1s\n")
    finally:
        cluster.destroy()


def signal_cluster(cluster: PgCluster, sig: int) -> None:
    """SIGSTOP/SIGCONT the cluster's postmaster and its children (all processes this test started)."""
    pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for p in (pid, *map(int, children)):
        os.kill(p, sig)


async def test_hung_server_is_unreachable_then_recovers(cluster: PgCluster,
                                                       make_scheduler: Callable[[str], Scheduler]) -> None:
    scheduler = make_scheduler(config(cluster, "30s", "1s"))
    await scheduler.collect_once()
    assert samples(scheduler)[UP] == 1
    signal_cluster(cluster, signal.SIGSTOP)
    try:
        await scheduler.collect_once()
        hung = samples(scheduler)
    finally:
        signal_cluster(cluster, signal.SIGCONT)
    assert (hung[UP], hung[UNREACHABLE]) == (0, 1)
    assert pg_series(hung) == []
    assert scheduler.snapshot.sources["pg"].status.error == (
        f"postgres {redact_url(cluster.dsn())} unreachable: no answer within 0.2s (connect_timeout)")
    await scheduler.collect_once()
    back = samples(scheduler)
    assert (back[UP], back[DEPTH], back[CHECK]) == (1, 2, 3)


async def test_hung_server_with_default_connect_timeout_is_unreachable_as_documented(
        cluster: PgCluster, make_scheduler: Callable[[str], Scheduler]) -> None:
    """docs/sources/postgres.md: hung -> kind `unreachable`; the default connect_timeout (0.8 x timeout) ends
    the wait inside the source's timeout, so the scheduler's `timeout` does not pre-empt it."""
    text = config(cluster, "30s", "0.5s").replace("    connect_timeout: 0.2s\n", "")
    scheduler = make_scheduler(text)
    await scheduler.collect_once()
    assert samples(scheduler)[UP] == 1
    signal_cluster(cluster, signal.SIGSTOP)
    try:
        await scheduler.collect_once()
        hung = samples(scheduler)
    finally:
        signal_cluster(cluster, signal.SIGCONT)
    assert (hung[UP], hung[UNREACHABLE]) == (0, 1)
    assert scheduler.snapshot.sources["pg"].status.error == (
        f"postgres {redact_url(cluster.dsn())} unreachable: no answer within 0.4s (connect_timeout)")


async def test_collection_cut_by_source_timeout_then_recovers(cluster: PgCluster,
                                                              make_scheduler: Callable[[str], Scheduler]) -> None:
    """The scheduler cancels a collection mid-statement; the next one must not trip over that connection."""
    with admin(cluster.dsn()) as conn:
        conn.execute("CREATE TABLE flag (on_ boolean); INSERT INTO flag VALUES (true)")
    scheduler = make_scheduler(config(cluster, "30s", "1s") + """      - name: sleepy
        sql: SELECT count(*) AS n FROM flag, LATERAL pg_sleep(CASE WHEN on_ THEN 5 ELSE 0 END)
        value: n
        timeout: 1s
""")
    await scheduler.collect_once()
    cut = samples(scheduler)
    assert (cut[UP], cut['jobqueue_collect_errors_total{source="pg",kind="timeout"}']) == (0, 1)
    assert pg_series(cut) == []
    with admin(cluster.dsn()) as conn:
        conn.execute("UPDATE flag SET on_ = false")
        for _ in range(40):  # the cut statement is cancelled on the server, not left sleeping for 5 s
            sleeping = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' "
                                    "AND pid <> pg_backend_pid() AND state = 'active'").fetchone()
            if sleeping == (0,):
                break
            await asyncio.sleep(0.05)
    assert sleeping == (0,)
    await scheduler.collect_once()
    back = samples(scheduler)
    assert (back[UP], back[DEPTH], back[CHECK], back['jobqueue_check_value{source="pg",check="sleepy",key=""}']) == (
        1, 2, 3, 1)
