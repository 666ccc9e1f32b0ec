"""Literal snapshots for unit tests of rules, renderers and shims: one source's status, its state, a
snapshot of states, a reading with typed facts, and the `View` a shim's pure function reads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from exporter.health.config import SystemConfig
from exporter.health.evaluation import HealthMonitor, SystemHealth
from exporter.model import QueueStats, Reading, Sample, Snapshot, SourceState, SourceStatus
from exporter.web.shims.base import View

NOW = 1_800_000_000.0


def status(name: str = "r", up: bool = True, at: float = NOW, *, backend: str = "redis", duration: float = 0.01,
           last_success: float | None = None, error: str | None = None, kind: str | None = None,
           collections: int = 1) -> SourceStatus:
    """A source's last collection; down ones default to an unreachable error and an older last success."""
    if not up:
        error = error if error is not None else "connection refused"
        kind = kind if kind is not None else "unreachable"
    return SourceStatus(name, backend, up, at, duration, last_success if last_success is not None else
                        (at if up else None), error, kind, collections)


def reading(queues: Iterable[QueueStats] = (), samples: Iterable[Sample] = (), *, latency: float | None = None,
            malformed: int = 0, details: Mapping[str, Any] | None = None, facts: Iterable[object] = ()) -> Reading:
    return Reading(tuple(queues), tuple(samples), latency, malformed, dict(details or {}), tuple(facts))


def state(name: str, read: Reading | None, up: bool | None = None, *, at: float = NOW, collections: int = 1,
          **status_fields: Any) -> SourceState:
    """A source's state: up when it has a reading unless `up` says otherwise (a down source keeps none)."""
    ok = read is not None if up is None else up
    return SourceState(status(name, ok, at, collections=collections, **status_fields), read if ok else None)


def snapshot(*states: SourceState, at: float = NOW) -> Snapshot:
    return Snapshot({s.status.name: s for s in states}, at)


class _Config:
    """The parts of the config a shim reads (`exporter.web.keys.AppConfig`), from literal systems."""

    def __init__(self, systems: Iterable[SystemConfig] = (), revision: str = "test") -> None:
        from exporter.health.config import AuthConfig
        from exporter.web.shims import ShimsConfig

        self.systems = list(systems)
        self.revision = revision
        self.shims = ShimsConfig()
        self.auth = AuthConfig()

    def source(self, name: str) -> None:
        return None

    def system(self, name: str) -> SystemConfig | None:
        return next((s for s in self.systems if s.name == name), None)


def view(snap: Snapshot, health: SystemHealth | None = None, *, systems: Iterable[SystemConfig] = (),
         started_at: float = NOW - 60, now: float = NOW) -> View:
    """What a shim's pure function reads, without an app: the snapshot, a verdict, the systems."""
    systems = list(systems)
    return View(snap, health, HealthMonitor(systems), _Config(systems), started_at, now)
