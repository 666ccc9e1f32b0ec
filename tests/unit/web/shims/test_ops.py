"""Seed 004's pure function on a literal view (moved from the integration tests: it needs no backend)."""

from __future__ import annotations

from exporter.health.evaluation import SystemHealth
from exporter.health.rules import Issue, WorkerState
from exporter.web.shims.ops import OpsShim, plannings
from tests.support import builders


def test_failed_hosts_top_five_and_recent_failures_from_rows() -> None:
    """The pure shim over literal rows such as a PostgreSQL check returns (`details.checks.<name>.rows`)."""
    hosts = [{"host": f"h{i}", "count": i, "lastFailure": "http_timeout"} for i in range(7)]
    failures = [{"planningFullId": f"p{i}", "failureKind": "http_timeout", "failures": 3,
                 "disabledUntil": "2026-03-02T11:00:00Z"} for i in range(6)]
    details = {"checks": {"hosts": {"rows": hosts}, "failures": {"rows": failures}}}
    snapshot = builders.snapshot(builders.state("pg", builders.reading(details=details), at=0.0, backend="postgres"),
                                 at=0.0)
    health = SystemHealth("plannings", "degraded", (Issue("high_disabled", "High disabled: 15/127 (12%)", "degraded"),),
                          True, {"backfill": WorkerState("backfill", 1.0, "idle", False)}, 0.0)
    shim = OpsShim.model_validate({"system": "plannings", "failed_hosts": {"source": "pg", "path": "checks.hosts.rows"},
                                   "recent_failures": {"source": "pg", "path": "checks.failures.rows"}})
    view = builders.view(snapshot, health, started_at=0.0, now=0.0)
    code, body = plannings(view, shim)
    assert (code, body["status"], body["issues"], body["workers"], body["inQuietHours"]) == (
        200, "degraded", ["High disabled: 15/127 (12%)"], {"backfill": "idle"}, True)
    assert [h["host"] for h in body["failedHosts"]] == ["h6", "h5", "h4", "h3", "h2"]
    assert body["failedHosts"][0] == {"host": "h6", "count": 6, "lastFailure": "http_timeout"}
    assert len(body["recentFailures"]) == 5
    assert body["recentFailures"][0] == {"planningFullId": "p0", "failureKind": "http_timeout", "failures": 3,
                                         "disabledUntil": "2026-03-02T11:00:00.000Z"}
    assert (body["queue"], body["backups"], body["lastBackupWrite"]) == (
        {"depth": None, "ready": None, "locked": None}, {"total": None, "covered": None, "disabled": None}, None)
