"""A short in-memory history of what the snapshots showed: what trends, percentiles and 'last hour'
numbers need (source latency and success, queue depths and completed counts)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from exporter.health.config import SystemConfig
from exporter.health.data import QueueSummary, SummaryCache
from exporter.model import Reading, Snapshot


@dataclass
class _Point:
    at: float
    up: bool
    latency: float | None


@dataclass
class History:
    """A bounded window of past observations: what trends, percentiles and 'last hour' numbers need."""

    window: float = 3600.0
    max_points: int = 1000
    _sources: dict[str, deque[_Point]] = field(default_factory=dict)
    _queues: dict[tuple[str, str, str], deque[tuple[float, int, int | None]]] = field(default_factory=dict)
    _seen: dict[str, float] = field(default_factory=dict)
    _summaries: SummaryCache = field(default_factory=SummaryCache)

    def observe(self, snapshot: Snapshot, systems: Iterable[SystemConfig]) -> None:
        """Record each source's newest collection once (a snapshot is swapped per source)."""
        fresh = []
        for name, state in snapshot.sources.items():
            status = state.status
            if status.collections == 0 or self._seen.get(name) == status.observed_at:
                continue
            self._seen[name] = status.observed_at
            latency = state.reading.latency if state.reading is not None else None
            points = self._sources.setdefault(name, deque(maxlen=self.max_points))
            points.append(_Point(status.observed_at, status.up, latency))
            self._trim(points, status.observed_at)
            fresh.append(name)
        for system in systems:
            for rule in system.queues:
                if rule.source in fresh:
                    self._observe_queues(snapshot, rule.source, rule.queue, rule.tenant)

    def _observe_queues(self, snapshot: Snapshot, source: str, queue: str, tenant: str) -> None:
        reading = snapshot.reading(source)
        if reading is None:
            return
        at = snapshot.sources[source].status.observed_at
        for name, summary in self.summary(source, reading, queue, tenant).items():
            points = self._queues.setdefault((source, tenant, name), deque(maxlen=self.max_points))
            points.append((at, summary.total, summary.completed))
            self._trim(points, at)

    def summary(self, source: str, reading: Reading, queue: str, tenant: str) -> dict[str, QueueSummary]:
        """Per queue name: totals and worst tenant, computed once per reading."""
        return self._summaries.get(source, reading, queue, tenant)

    def _trim(self, points: deque[Any], now: float) -> None:
        while points and (points[0].at if isinstance(points[0], _Point) else points[0][0]) < now - self.window:
            points.popleft()

    def depths(self, source: str, tenant: str, queue: str) -> list[int]:
        """Total depth of a queue at each recorded collection, oldest first."""
        return [d for _, d, _ in self._queues.get((source, tenant, queue), ())]

    def latencies(self, source: str) -> list[float]:
        return [p.latency for p in self._sources.get(source, ()) if p.latency is not None]

    def error_rate(self, source: str) -> float | None:
        """Share of failed collections in the window, in percent; None before the first collection."""
        points = self._sources.get(source)
        if not points:
            return None
        return 100.0 * sum(1 for p in points if not p.up) / len(points)
