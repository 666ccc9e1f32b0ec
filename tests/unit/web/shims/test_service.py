"""Seed 002's pure functions on literal views: services from probe facts, resources from the host fact,
consistency from check facts."""

from __future__ import annotations

from exporter.facts import CheckRecord, HostResources, ProbeResult
from exporter.health.config import SystemConfig
from exporter.health.evaluation import evaluate
from exporter.health.history import History
from exporter.web.shims.base import View
from exporter.web.shims.service import ServiceShim, basic, consistency, detailed, services
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


def test_build_facts_come_from_the_build_never_from_the_clock() -> None:
    """Seed 002: build_git_hash is the "Git commit hash", build_timestamp the "Binary build time". They
    were "unknown" and the exporter's start time; now the container's build args (REVISION, BUILD_DATE,
    as environment variables), the commit pip recorded from git (PEP 610), or the config's revision;
    null when the build said nothing."""
    from exporter.web.shims.service import build_facts

    env = {"JOBQUEUE_EXPORTER_REVISION": "3a6c1865", "JOBQUEUE_EXPORTER_BUILD_TIMESTAMP": "2026-05-16T13:38:15Z"}
    assert build_facts(env, "unknown", None) == ("3a6c1865", "2026-05-16T13:38:15Z")
    assert build_facts({"JOBQUEUE_EXPORTER_BUILD_TIMESTAMP": "1778938695"}, "unknown", "9f0e") == (
        "9f0e", "2026-05-16T13:38:15Z")  # SOURCE_DATE_EPOCH style
    assert build_facts({"JOBQUEUE_EXPORTER_REVISION": "unknown"}, "v1.4.0-3-gabc", None) == ("v1.4.0-3-gabc", None)
    assert build_facts({}, "unknown", None) == (None, None)
    code, body = basic(builders.view(builders.snapshot(), None, systems=[SYSTEM], started_at=NOW - 3, now=NOW),
                       ServiceShim(system="media"))
    assert code == 200 and body["uptime_ms"] == 3000
    assert body["build_timestamp"] != "2027-01-15T07:59:57Z"  # never the start time


def test_a_check_that_cannot_run_never_reads_ok() -> None:
    """Issue 22 item 7 in seed 002's words: a consistency check that cannot run makes /health/consistency
    `degraded` (its count of 0 means nothing), and a check the system reads that cannot run makes its
    service `degraded` (it used to read `ok`, and so did /health)."""
    from exporter.health.config import CheckRule

    system = SystemConfig(name="media", sources=["db"],
                          checks=[CheckRule(source="db"), CheckRule(source="db", checks=["identities_count"])])
    missing = 'relation "media_identities" does not exist'
    for fact, consistency_status in ((CheckRecord("orphans", "warn", 0, error=missing), "degraded"),
                                     (CheckRecord("identities_count", None, 0, error=missing), "ok")):
        db = builders.reading(latency=0.002, facts=[fact])
        snap = builders.snapshot(builders.state("db", db, backend="postgres"))
        view = builders.view(snap, evaluate(system, snap, History(), NOW), systems=[system])
        shim = ServiceShim.model_validate({"system": "media", "services": {"postgres": "db"}, "consistency": "db"})
        assert services(view, shim) == {"postgres": {"status": "degraded", "latency_ms": 2}}
        assert basic(view, shim)[1]["status"] == "degraded"
        assert consistency(view, shim)[1]["status"] == consistency_status
