"""Seed 001's pure function on a literal view: every block from the NATS source's typed facts."""

from __future__ import annotations

from exporter.facts import AgentInfo, ConsumerInfo, NatsState, RegistryAgents, RegistryJobs, StreamInfo
from exporter.health.config import SystemConfig
from exporter.health.evaluation import evaluate
from exporter.health.history import History
from exporter.web.shims.status import StatusShim, platform_status
from tests.support import builders

NOW = builders.NOW
SYSTEM = SystemConfig.model_validate({"name": "jobs", "sources": ["nats"]})


def test_blocks_from_facts() -> None:
    nats = NatsState("nats://10.0.0.5:4222", "2.10.22", (StreamInfo("JOBS", 7, 2048, 1),),
                     (ConsumerInfo("JOBS", "worker", 3, 1, 2),), (("registry", 2, 512), ("big", None, 9)),
                     (("artifacts", 1000),))
    facts = [nats, RegistryJobs(7, {"unprocessed": 3, "processing": 1, "completed": 2, "failed": 1, "dlq": 0}),
             RegistryAgents(1, 1, (AgentInfo("gpu-1", "gpu=a100", "Ready", NOW - 120, True),))]
    snap = builders.snapshot(builders.state("nats", builders.reading(facts=facts), backend="nats"))
    v = builders.view(snap, evaluate(SYSTEM, snap, History(), NOW), systems=[SYSTEM], started_at=NOW - 3661)
    code, body = platform_status(v, StatusShim(system="jobs", nats="nats", version="1.2.3"))
    assert code == 200
    assert body["status"] == "ok" and body["version"] == "1.2.3" and body["uptime"] == "1h1m"
    assert body["components"] == {"nats": {"status": "ok", "address": "nats://10.0.0.5:4222"}}
    assert body["nats"] == {"url": "nats://10.0.0.5:4222", "version": "2.10.22"}
    assert body["streams"] == [{"name": "JOBS", "messages": 7, "bytes": 2048, "consumers": 1}]
    assert body["kv_buckets"] == [{"name": "registry", "keys": 2, "bytes": 512}, {"name": "big", "keys": None,
                                                                                  "bytes": 9}]
    assert body["object_stores"] == [{"name": "artifacts", "size": 1000}]
    assert body["jobs"] == {"total": 7, "unprocessed": 3, "processing": 1, "completed": 2, "failed": 1, "dlq": 0}
    assert body["agents"] == {"total": 1, "ready": 1, "agents": [{"hostname": "gpu-1", "labels": "gpu=a100",
                                                                  "registered": "2m ago"}]}
    assert body["consumers"] == {"total": 1, "consumers": [{"name": "worker", "pending": 3, "ack_pending": 1,
                                                            "redelivered": 2}]}
    assert body["registry"] == [{"type": "agent", "hostname": "gpu-1", "status": "Ready", "conditions": [],
                                 "age": None, "cpu_percent": None, "mem_bytes": None}]


def test_down_nats_is_503_with_null_blocks() -> None:
    snap = builders.snapshot(builders.state("nats", None, backend="nats"))
    v = builders.view(snap, evaluate(SYSTEM, snap, History(), NOW), systems=[SYSTEM])
    code, body = platform_status(v, StatusShim(system="jobs", nats="nats"))
    assert code == 503 and body["status"] == "unhealthy"
    assert (body["nats"], body["streams"], body["jobs"], body["agents"], body["consumers"]) == (None, [], None, None,
                                                                                                None)
    assert body["components"] == {"nats": {"status": "unhealthy", "error": "connection refused"}}
