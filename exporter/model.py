"""Plain, immutable records that flow from sources to metrics, health and web.

Nothing here talks to a backend or knows HTTP: a source fills these records, the scheduler
stamps them into a `Snapshot`, and every reader works from that one frozen value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class QueueStats(NamedTuple):
    """One queue (of one tenant) as a source saw it; a NamedTuple because a source builds
    tens of thousands per cycle.

    `oldest_timestamp` is the enqueue time of the oldest waiting item in Unix seconds, or None when
    the queue is empty or the backend keeps no time. `states` feeds `jobqueue_jobs{state}`.
    """

    queue: str
    depth: int
    tenant: str = ""
    oldest_timestamp: float | None = None
    states: tuple[tuple[str, int], ...] = ()
    failed: int | None = None
    wait_seconds: float | None = None
    paused: bool | None = None
    # jobs the library recorded as finished in the last 3600 s, from its own finish times; None where
    # the backend keeps none (a count since the exporter started would be made up)
    completed_last_hour: int | None = None


class Sample(NamedTuple):
    """One value of a source-specific metric declared in the source's metric table.

    `labels` are the label values in the declared order, without the leading `source` label,
    which the renderer adds.
    """

    metric: str
    labels: tuple[str, ...]
    value: float


@dataclass(frozen=True, slots=True)
class Reading:
    """What one successful `collect()` returns.

    `details` carries structured facts that health rules and the JSON shims read (for example
    Horizon supervisors or NATS streams); it is never exported as metrics directly.
    """

    queues: tuple[QueueStats, ...] = ()
    samples: tuple[Sample, ...] = ()
    latency: float | None = None
    malformed: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)
    # series the source produced more than once (two layouts or presets claiming one queue), dropped
    # by `unique_series`; counted so that the collision shows instead of a doubled or flapping value
    collisions: tuple[tuple[str, ...], ...] = ()


def unique_series(reading: Reading) -> Reading:
    """The reading with every series once: the first queue record of a (tenant, queue) and the first
    sample of a (metric, labels) win, the others are listed in `collisions`."""
    seen: set[tuple[str, str]] = set()
    queues: list[QueueStats] = []
    dup: list[tuple[str, ...]] = []
    for q in reading.queues:
        key = (q.tenant, q.queue)
        if key in seen:
            dup.append(("jobqueue_depth", *key))
        else:
            seen.add(key)
            queues.append(q)
    taken: set[tuple[str, tuple[str, ...]]] = set()
    samples: list[Sample] = []
    for sample in reading.samples:
        skey = (sample.metric, sample.labels)
        if skey in taken:
            dup.append((sample.metric, *sample.labels))
        else:
            taken.add(skey)
            samples.append(sample)
    if not dup:
        return reading
    return Reading(tuple(queues), tuple(samples), reading.latency, reading.malformed, reading.details,
                   tuple(dict.fromkeys(dup)))


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """How the last collection of a source went; written by the scheduler, never by a source."""

    name: str
    backend: str
    up: bool
    observed_at: float
    duration: float
    last_success: float | None
    error: str | None = None
    error_kind: str | None = None
    collections: int = 0


@dataclass(frozen=True, slots=True)
class SourceState:
    """The latest status of a source and, when it is up, its reading and rendered fragments."""

    status: SourceStatus
    reading: Reading | None
    fragments: Mapping[str, bytes] = field(default_factory=dict)  # metric name -> sample lines


@dataclass(frozen=True)
class Snapshot:
    """Everything known at one instant; swapped whole, so readers never see half a cycle."""

    sources: Mapping[str, SourceState] = field(default_factory=dict)
    created_at: float = 0.0

    def reading(self, source: str) -> Reading | None:
        """The current reading of `source`, or None while it is down or not yet collected."""
        state = self.sources.get(source)
        return state.reading if state else None

    @property
    def ready(self) -> bool:
        """True once every source has finished at least one collection, successful or not."""
        return all(s.status.collections > 0 for s in self.sources.values())
