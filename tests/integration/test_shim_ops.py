"""Seed 004: /api/ops/plannings served from a real files source (const leaves stand in for the
planning database), the seed's status logic and texts, and the x-ops-token rules."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.support.shims import get, serve


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def config(backfill_ago: float, refresh_state: str, production: bool = True, token: bool = True) -> str:
    now = time.time()
    auth = "auth: {tokens: [{name: ops, token_env: OPS_TOKEN, roles: [ops]}]}" if token else ""
    return f"""
sources:
  - name: planning
    type: files
    checks:
      jobs: {{run: {{const: true}}, paused: {{const: false}}}}
      workers:
        backfill_at: {{const: "{iso(now - backfill_ago)}"}}
        refresh_at: {{const: "{iso(now - 5)}"}}
        refresh_state: {{const: {refresh_state}}}
      queue: {{depth: {{const: 15}}, ready: {{const: 3}}, locked: {{const: 1}}}}
      backups: {{total: {{const: 127}}, covered: {{const: 125}}, disabled: {{const: 2}}}}
      last:
        planningFullId: {{const: enscr.elevesing1iereannee}}
        changed: {{const: true}}
        nbEvents: {{const: 42}}
        at: {{const: "2026-03-02T10:30:00Z"}}
systems:
  - name: plannings
    sources: [planning]
    jobs: {{source: planning, enabled: jobs.run, paused: jobs.paused}}
    workers:
      - {{name: backfill, source: planning, last_run: workers.backfill_at, interval: 10m}}
      - {{name: refreshWorker, source: planning, last_run: workers.refresh_at, interval: 30s,
          state: workers.refresh_state}}
    stuck: [{{source: planning, ready: queue.ready, worker: refreshWorker, min_ready: 1}}]  # the seed's 3 ready
    shares: [{{source: planning, total: backups.total, part: backups.disabled}}]
{auth}
shims:
  ops:
    system: plannings
    production: {str(production).lower()}
    queue: {{source: planning, path: queue}}
    backups: {{source: planning, path: backups}}
    last_backup_write: {{source: planning, path: last}}
"""


NOT_FOUND = {"error": "NOT_FOUND"}
TOKEN = {"x_ops_token": "ops-secret"}


@pytest.fixture(autouse=True)
def ops_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPS_TOKEN", "ops-secret")


async def test_healthy_document() -> None:
    async with serve(config(60, "working")) as (client, _):
        assert await get(client, "/api/ops/plannings", **TOKEN) == (200, {
            "status": "healthy", "issues": [], "workers": {"backfill": None, "refreshWorker": "working"},
            "inQuietHours": False, "queue": {"depth": 15, "ready": 3, "locked": 1},
            "backups": {"total": 127, "covered": 125, "disabled": 2},
            "lastBackupWrite": {"planningFullId": "enscr.elevesing1iereannee", "changed": True, "nbEvents": 42,
                                "at": "2026-03-02T10:30:00.000Z"},
            "failedHosts": None, "recentFailures": None})


async def test_unhealthy_with_the_seed_texts() -> None:
    async with serve(config(45 * 60 + 10, "idle")) as (client, _):
        status, body = await get(client, "/api/ops/plannings", **TOKEN)
        assert (status, body["status"], body["issues"]) == (200, "unhealthy", [
            "Backfill stale (45m ago)", "Queue stuck: 3 ready but worker idle"])
        metrics = await (await client.get("/metrics")).text()
        assert 'jobqueue_health_issue{system="plannings",issue="worker_stale:backfill"} 1' in metrics
        assert 'jobqueue_worker_last_run_timestamp_seconds{system="plannings",worker="refreshWorker"}' in metrics


@pytest.mark.parametrize("production,token,headers,code", [
    (True, True, {}, 404), (True, True, {"x_ops_token": "wrong"}, 404), (True, True, TOKEN, 200),
    (True, False, {}, 404), (True, False, TOKEN, 404),
    (False, False, {}, 200), (False, True, {}, 404), (False, True, TOKEN, 200),
])
async def test_token_rules(production: bool, token: bool, headers: dict[str, str], code: int) -> None:
    async with serve(config(60, "working", production, token)) as (client, _):
        status, body = await get(client, "/api/ops/plannings", **headers)
        assert status == code
        if code == 404:
            assert body == NOT_FOUND


PG = '''
sources:
  - name: pg
    type: postgres
    dsn: postgresql://postgres@127.0.0.1:5432/postgres
    checks:
      - {name: jobs, sql: "SELECT true AS run_jobs, false AS paused"}
      - name: workers
        sql: "SELECT now() - interval '45 minutes 10 seconds' AS backfill_at, 'idle' AS backfill_state,
              now() AS refresh_at, 'idle' AS refresh_state"
      - {name: queue, sql: "SELECT 15 AS depth, 3 AS ready, 1 AS locked"}
      - {name: backups, sql: "SELECT 127 AS total, 112 AS covered, 15 AS disabled"}
      - name: last_backup
        sql: "SELECT 'enscr.elevesing1iereannee' AS \\"planningFullId\\", true AS changed, 42 AS \\"nbEvents\\",
              timestamptz '2026-03-02 10:30:00+00' AS at"
      - name: failed_hosts
        sql: "SELECT * FROM (VALUES ('fac-de-sciences', 2, 'http_timeout'), ('a', 1, 'x'), ('b', 5, 'y'),
              ('c', 4, 'z'), ('d', 3, 'w'), ('e', 6, 'v')) AS t(host, count, \\"lastFailure\\")"
      - name: recent_failures
        sql: "SELECT 'fac-de-sciences.master.m1info' AS \\"planningFullId\\", 'http_timeout' AS \\"failureKind\\",
              3 AS failures, timestamptz '2026-03-02 11:00:00+00' AS \\"disabledUntil\\""
systems:
  - name: plannings
    sources: [pg]
    jobs: {source: pg, enabled: checks.jobs.rows.0.run_jobs, paused: checks.jobs.rows.0.paused}
    workers:
      - {name: backfill, source: pg, last_run: checks.workers.rows.0.backfill_at, interval: 10m,
         state: checks.workers.rows.0.backfill_state}
      - {name: refreshWorker, source: pg, last_run: checks.workers.rows.0.refresh_at, interval: 30s,
         state: checks.workers.rows.0.refresh_state}
    stuck: [{source: pg, ready: checks.queue.rows.0.ready, worker: refreshWorker, min_ready: 1}]
    shares: [{source: pg, total: checks.backups.rows.0.total, part: checks.backups.rows.0.disabled}]
auth: {tokens: [{name: ops, token_env: OPS_TOKEN, roles: [ops]}]}
shims:
  ops:
    system: plannings
    queue: {source: pg, path: checks.queue.rows.0}
    backups: {source: pg, path: checks.backups.rows.0}
    last_backup_write: {source: pg, path: checks.last_backup.rows.0}
    failed_hosts: {source: pg, path: checks.failed_hosts.rows}
    recent_failures: {source: pg, path: checks.recent_failures.rows}
'''


async def test_document_from_postgresql_checks() -> None:
    async with serve(PG) as (client, _):
        assert await get(client, "/api/ops/plannings", **TOKEN) == (200, {
            "status": "unhealthy",
            "issues": ["Backfill stale (45m ago)", "Queue stuck: 3 ready but worker idle",
                       "High disabled: 15/127 (12%)"],
            "workers": {"backfill": "idle", "refreshWorker": "idle"},
            "inQuietHours": False,
            "queue": {"depth": 15, "ready": 3, "locked": 1},
            "backups": {"total": 127, "covered": 112, "disabled": 15},
            "lastBackupWrite": {"planningFullId": "enscr.elevesing1iereannee", "changed": True, "nbEvents": 42,
                                "at": "2026-03-02T10:30:00.000Z"},
            "failedHosts": [{"host": h, "count": n, "lastFailure": f} for h, n, f in (
                ("e", 6, "v"), ("b", 5, "y"), ("c", 4, "z"), ("d", 3, "w"), ("fac-de-sciences", 2, "http_timeout"))],
            "recentFailures": [{"planningFullId": "fac-de-sciences.master.m1info", "failureKind": "http_timeout",
                                "failures": 3, "disabledUntil": "2026-03-02T11:00:00.000Z"}],
        })


# The example's plannings system before its tables exist (issue 22 item 7): the checks its rules and the
# shim read cannot run (jobqueue_check_up 0), so nothing says the workers are stale, the queue stuck or
# the share high; the system must read degraded, not healthy. Table names that exist in no database.
MISSING = '''
sources:
  - name: pg
    type: postgres
    dsn: postgresql://postgres@127.0.0.1:5432/postgres
    checks:
      - {name: workers, sql: "SELECT max(finished_at) AS backfill_at FROM jq_shims_no_such_worker_runs"}
      - {name: backups, sql: "SELECT count(*) AS total, 0 AS disabled FROM jq_shims_no_such_backups"}
      - {name: last_backup, sql: "SELECT * FROM jq_shims_no_such_backup_writes"}
      - {name: idle, sql: "SELECT 1 AS n"}
systems:
  - name: plannings
    sources: [pg]
    workers: [{name: backfill, source: pg, last_run: checks.workers.rows.0.backfill_at, interval: 10m}]
    shares: [{source: pg, total: checks.backups.rows.0.total, part: checks.backups.rows.0.disabled}]
    checks: [{source: pg, checks: [last_backup]}]   # read by the shim, not by a rule
auth: {tokens: [{name: ops, token_env: OPS_TOKEN, roles: [ops]}]}
shims:
  ops:
    system: plannings
    backups: {source: pg, path: checks.backups.rows.0}
    last_backup_write: {source: pg, path: checks.last_backup.rows.0}
'''


async def test_checks_that_cannot_run_read_degraded() -> None:
    async with serve(MISSING) as (client, _):
        status, body = await get(client, "/api/ops/plannings", **TOKEN)
        assert (status, body["status"], body["backups"]) == (200, "degraded",
                                                              {"total": None, "covered": None, "disabled": None})
        assert [i.split(":")[0] for i in body["issues"]] == [
            "Check workers cannot run", "Check backups cannot run", "Check last_backup cannot run"]
        assert 'relation "jq_shims_no_such_worker_runs" does not exist' in body["issues"][0]
        metrics = await (await client.get("/metrics")).text()
        assert 'jobqueue_check_up{source="pg",check="workers"} 0' in metrics
        assert 'jobqueue_check_up{source="pg",check="idle"} 1' in metrics
        assert 'jobqueue_health_status{system="plannings",status="degraded"} 1' in metrics
        assert 'jobqueue_health_issue{system="plannings",issue="check_failed:workers"} 1' in metrics


async def test_a_stale_worker_is_stale_in_quiet_hours_too() -> None:
    """Seed 004 makes no quiet-hours exception: backfill 45 min late reads unhealthy at any hour."""
    quiet = config(45 * 60 + 10, "working").replace(
        "    sources: [planning]\n", "    sources: [planning]\n    quiet_hours: '00:00-23:59'\n")
    async with serve(quiet) as (client, _):
        status, body = await get(client, "/api/ops/plannings", **TOKEN)
        assert (status, body["status"], body["inQuietHours"], body["issues"]) == (
            200, "unhealthy", time.gmtime().tm_hour * 60 + time.gmtime().tm_min < 23 * 60 + 59,
            ["Backfill stale (45m ago)"])
