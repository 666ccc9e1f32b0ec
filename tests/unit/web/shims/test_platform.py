"""Seed 003's pure functions on literal views: queue rows, infrastructure (pool use from the typed fact),
the job shape, Alertmanager alerts."""

from __future__ import annotations

from exporter.facts import PoolUse
from exporter.health.config import SystemConfig
from exporter.health.evaluation import evaluate
from exporter.health.history import History
from exporter.model import Job, QueueStats, SourceState
from exporter.web.shims.base import View
from exporter.web.shims.platform import PlatformShim, infrastructure, job_body, queue_rows
from tests.support import builders

NOW = builders.NOW
SYSTEM = SystemConfig.model_validate({"name": "mail", "sources": ["redis", "pg"], "queues": [
    {"source": "redis", "queue": "email", "tenant": "*", "priority": "high"}, {"source": "pg", "queue": "bulk"}]})


def _view(*states: SourceState) -> View:
    snap = builders.snapshot(*states)
    return builders.view(snap, evaluate(SYSTEM, snap, History(), NOW), systems=[SYSTEM])


def test_queue_rows_total_over_tenants_and_a_down_source_is_critical() -> None:
    redis = builders.reading([QueueStats("email", 150, "a", states=(("active", 2),), failed=1),
                              QueueStats("email", 5, "b", failed=0)])
    rows = queue_rows(_view(builders.state("redis", redis), builders.state("pg", None, backend="postgres")))
    assert rows == [
        {"name": "email", "priority": "high", "active_jobs": 2, "waiting_jobs": 155, "completed_last_hour": None,
         "failed_jobs": 1, "status": "warning"},
        {"name": "bulk", "priority": "normal", "active_jobs": None, "waiting_jobs": None,
         "completed_last_hour": None, "failed_jobs": None, "status": "critical"}]


def test_infrastructure_reads_pool_use_from_the_fact() -> None:
    pg = builders.reading([QueueStats("bulk", 1)], latency=0.004, facts=[PoolUse(5, 20)])
    v = _view(builders.state("redis", builders.reading()), builders.state("pg", pg, backend="postgres"))
    code, body = infrastructure(v, PlatformShim(system="mail", service_names={"pg": "OLTP Database"}))
    assert code == 200
    pg_entry = body["data"]["services"][1]
    assert pg_entry == {"name": "OLTP Database", "status": "healthy",
                        "response_time_ms": {"avg": None, "p95": None, "p99": None}, "error_rate_percent": None,
                        "queue_backlog": 1, "connection_pool_usage_percent": 25.0, "query_latency_ms": 4}
    assert "connection_pool_usage_percent" not in body["data"]["services"][0]


def test_job_body_is_the_seed_shape() -> None:
    job = Job("j1", "email", "failed", {"to": "x"}, "boom", "at line 1", 3, NOW - 60, None)
    assert job_body(job) == {"id": "j1", "queue": "email", "status": "failed", "payload": {"to": "x"},
                             "error": {"message": "boom", "stack_trace": "at line 1"}, "attempts": 3,
                             "created_at": "2027-01-15T07:59:00Z", "updated_at": None}
    assert job_body(Job(None, "q", "waiting"))["error"] is None
