"""Seed 002's pure functions on literal views: services from probe facts, resources from the host fact,
consistency from check facts."""

from __future__ import annotations

from exporter.facts import CheckRecord, HostResources, ProbeResult
from exporter.health.config import SystemConfig
from exporter.health.evaluation import evaluate
from exporter.health.history import History
from exporter.web.shims.base import View
from exporter.web.shims.service import ServiceShim, consistency, detailed, services
from tests.support import builders

NOW = builders.NOW
SYSTEM = SystemConfig.model_validate({"name": "media", "sources": ["api", "db", "host"]})
SHIM = ServiceShim.model_validate({"system": "media", "services": {"api": "api", "database": "db"},
                                   "resources": "host", "consistency": "db"})


def _view(api_ok: bool) -> View:
    api = builders.reading(latency=0.0123, facts=[ProbeResult(api_ok, 200 if api_ok else 503, 12,
                                                              None if api_ok else "status 503")])
    db = builders.reading(latency=0.002, facts=[CheckRecord("orphans", "warn", 2, ({"file_name": "a.mp4"},)),
                                                CheckRecord("queue", None, 1, ({"depth": 3},))])
    host = builders.reading(facts=[HostResources("h", 12.345, 40.06, 3 * 1048576 + 5)])
    snap = builders.snapshot(builders.state("api", api), builders.state("db", db, backend="postgres"),
                             builders.state("host", host, backend="system"))
    return builders.view(snap, evaluate(SYSTEM, snap, History(), NOW), systems=[SYSTEM])


def test_services_follow_the_probe_fact() -> None:
    assert services(_view(True), SHIM) == {"api": {"status": "ok", "latency_ms": 12},
                                           "database": {"status": "ok", "latency_ms": 2}}
    assert services(_view(False), SHIM)["api"] == {"status": "error", "latency_ms": 12}


def test_resources_from_the_host_fact() -> None:
    _, body = detailed(_view(True), SHIM)
    assert body["resources"] == {"cpu_used_percent": 12.3, "memory_available_mb": 3, "memory_used_percent": 40.1}


def test_consistency_lists_consistency_checks_only() -> None:
    code, body = consistency(_view(True), SHIM)
    assert code == 200 and body["status"] == "degraded" and body["checked_at"] == "2027-01-15T08:00:00Z"
    assert body["checks"] == [{"check": "orphans", "severity": "warn", "count": 2, "files": [
        {"file_name": "a.mp4", "file_uuid": None, "status": None, "detail": None}]}]
