"""The NATS job-platform seed's registries, read from KV buckets whose layout the config describes.

Jobs: one key per job; its status is a (dotted) JSON field of the value or a token of the key,
mapped onto the seed's states unprocessed, processing, completed, failed, dlq. Agents: one key per
agent; hostname, labels, status and heartbeat come from JSON fields, and the heartbeat defaults to
the time the key was last written (each heartbeat rewrites it).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from exporter.facts import AgentInfo, RegistryAgents
from exporter.model import QueueStats, Sample
from exporter.sources.base import SourceError
from exporter.sources.nats.config import AgentRegistry, JobsRegistry
from exporter.sources.nats.parse import (
    JobCounts,
    KvEntry,
    StreamRecord,
    count_jobs,
    parse_agent,
    subject_matches,
)


class KvSource(Protocol):
    """What the registry readers need of the NATS source (a protocol, so registry and source import one way)."""

    @property
    def name(self) -> str: ...

    async def kv_entries(self, bucket: str) -> list[KvEntry] | None: ...

log = logging.getLogger("jobqueue.nats")


async def _entries(source: KvSource, bucket: str, keys: str,
                   streams: dict[str, StreamRecord]) -> list[KvEntry] | None:
    if f"KV_{bucket}" not in streams:
        log.warning("registry bucket missing", extra={"source": source.name, "bucket": bucket})
        return None
    try:
        entries = await source.kv_entries(bucket) or []
    except SourceError as err:
        if err.kind != "not_found":
            raise
        return None  # deleted since STREAM.LIST
    return [e for e in entries if keys == ">" or subject_matches(e.key, keys)]


async def read_jobs(source: KvSource, spec: JobsRegistry,
                    streams: dict[str, StreamRecord]) -> tuple[QueueStats, JobCounts, dict[str, Any]]:
    """Jobs by state -> one QueueStats (depth = unprocessed) and the seed's `jobs` object."""
    entries = await _entries(source, spec.bucket, spec.keys, streams)
    counts = count_jobs(entries or [], spec.status_field, spec.status_token, spec.state_of(), spec.created_field)
    unprocessed = counts.states["unprocessed"]
    queue = QueueStats(
        spec.queue or spec.bucket, unprocessed,
        oldest_timestamp=counts.oldest_unprocessed if unprocessed else None,
        states=(*counts.states.items(), ("other", counts.other)),
        failed=counts.states["failed"],
    )
    info = {"bucket": spec.bucket, "exists": entries is not None, **counts.as_details(),
            "oldest_unprocessed": queue.oldest_timestamp}
    return queue, counts, info


async def read_agents(source: KvSource, spec: AgentRegistry, streams: dict[str, StreamRecord],
                      now: float) -> tuple[list[Sample], dict[str, Any], int, RegistryAgents]:
    """Registered agents -> samples, the seed's `agents` object and the count of unreadable entries."""
    entries = await _entries(source, spec.bucket, spec.keys, streams)
    agents, bad = [], 0
    for entry in entries or []:
        if not entry.live:
            continue
        agent = parse_agent(entry, spec.hostname_field, spec.labels_field, spec.heartbeat_field,
                            spec.status_field, spec.ready_values, spec.stale_after, now)
        if agent is None:
            bad += 1
        else:
            agents.append(agent)
    agents.sort(key=lambda a: a.hostname)
    ready = sum(a.ready for a in agents)
    samples = [Sample("jobqueue_nats_agents", ("true",), ready),
               Sample("jobqueue_nats_agents", ("false",), len(agents) - ready)]
    seen: set[str] = set()
    for a in agents:
        if a.last_heartbeat is not None and a.hostname not in seen:
            seen.add(a.hostname)
            samples.append(Sample("jobqueue_nats_agent_heartbeat_timestamp_seconds", (a.hostname,), a.last_heartbeat))
    info = {"bucket": spec.bucket, "exists": entries is not None, "total": len(agents), "ready": ready,
            "agents": [{"hostname": a.hostname, "labels": a.labels, "status": a.status,
                        "last_heartbeat": a.last_heartbeat, "ready": a.ready, "stale": a.stale} for a in agents]}
    fact = RegistryAgents(len(agents), ready, tuple(AgentInfo(a.hostname, a.labels, a.status, a.last_heartbeat, a.ready,
                                                              a.stale) for a in agents))
    return samples, info, bad, fact
