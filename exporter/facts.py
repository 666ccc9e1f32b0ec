"""Typed facts: what health rules and the JSON shims read of a source, as frozen records.

A source puts them in `Reading.facts`; a reader asks `reading.fact(HostResources)` or
`reading.facts_of(CheckRecord)` and gets a typed value or nothing, never a literal key into
`Reading.details`. `details` stays the free-form tree that operator-written `Ref` paths of the config
reach into (through `exporter/values.py`), so it keeps its documented keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class CheckRecord:
    """One operator check of a source (PostgreSQL SQL checks): rows found, or why it failed.

    `severity` is warn | info | error | critical for a consistency check, None for a data check (rows
    that other rules read through `Ref` paths)."""

    name: str
    severity: str | None
    count: int
    rows: tuple[Mapping[str, Any], ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One HTTP probe that got an answer: whether it was the expected one, and why not."""

    ok: bool
    status_code: int
    latency_ms: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class HostResources:
    """CPU and memory of the host (the media-service seed's `resources`)."""

    hostname: str
    cpu_percent: float
    memory_percent: float
    memory_available_bytes: int


@dataclass(frozen=True, slots=True)
class HorizonQueue:
    pending: int
    wait_seconds: float


@dataclass(frozen=True, slots=True)
class HorizonState:
    """Laravel Horizon of one tenant: pending and wait per queue, recently failed jobs."""

    tenant: str
    queues: Mapping[str, HorizonQueue]
    failed_jobs: int


@dataclass(frozen=True, slots=True)
class Tenants:
    """The tenant ids a source currently reads (another source may take its tenants from these)."""

    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QueryOutcome:
    """One built-in query of a source (a PostgreSQL preset, migrations, connections, tenants) this cycle."""

    name: str
    ok: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PoolUse:
    """Connections in use against the most the server allows."""

    in_use: int
    size: int

    @property
    def percent(self) -> float | None:
        return round(100.0 * self.in_use / self.size, 1) if self.size > 0 else None


@dataclass(frozen=True, slots=True)
class StreamInfo:
    name: str
    messages: int
    bytes: int
    consumers: int


@dataclass(frozen=True, slots=True)
class ConsumerInfo:
    stream: str
    name: str
    pending: int
    ack_pending: int
    redelivered: int


@dataclass(frozen=True, slots=True)
class NatsState:
    """A NATS server with JetStream: where, which version, and its streams, consumers, buckets and stores."""

    url: str
    version: str
    streams: tuple[StreamInfo, ...] = ()
    consumers: tuple[ConsumerInfo, ...] = ()
    kv_buckets: tuple[tuple[str, int | None, int], ...] = ()  # (name, live keys or None past the cap, bytes)
    object_stores: tuple[tuple[str, int], ...] = ()  # (name, size)


@dataclass(frozen=True, slots=True)
class RegistryJobs:
    """Jobs of a job registry (a KV bucket) by canonical state."""

    total: int
    states: Mapping[str, int] = field(default_factory=dict)  # unprocessed, processing, completed, failed, dlq


@dataclass(frozen=True, slots=True)
class AgentInfo:
    hostname: str
    labels: str
    status: str
    last_heartbeat: float | None
    ready: bool
    stale: bool = False  # silent past the registry's stale_after: NotReady whatever it last wrote


@dataclass(frozen=True, slots=True)
class RegistryAgents:
    """Registered agents (a KV bucket), and how many are ready."""

    total: int
    ready: int
    agents: tuple[AgentInfo, ...] = ()
