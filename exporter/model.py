"""Plain, immutable records that flow from sources to metrics, health and web.

Nothing here talks to a backend or knows HTTP: a source fills these records, the scheduler
stamps them into a `Snapshot`, and every reader works from that one frozen value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")


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

    `facts` are the typed records health rules and the JSON shims read (`exporter/facts.py`);
    `details` is the free-form tree that operator-written `Ref` paths of the config reach into.
    Neither is exported as metrics directly.
    """

    queues: tuple[QueueStats, ...] = ()
    samples: tuple[Sample, ...] = ()
    latency: float | None = None
    malformed: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)
    facts: tuple[object, ...] = ()
    # series the source produced more than once (two layouts or presets claiming one queue), dropped
    # by `unique_series`; counted so that the collision shows instead of a doubled or flapping value
    collisions: tuple[tuple[str, ...], ...] = ()

    def fact(self, kind: type[T]) -> T | None:
        """The source's one fact of that type (`exporter/facts.py`), or None."""
        return next((f for f in self.facts if isinstance(f, kind)), None)

    def facts_of(self, kind: type[T]) -> list[T]:
        """Every fact of that type, in the order the source gave them."""
        return [f for f in self.facts if isinstance(f, kind)]


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
    return replace(reading, queues=tuple(queues), samples=tuple(samples), collisions=tuple(dict.fromkeys(dup)))


@dataclass(frozen=True, slots=True)
class Job:
    """One job of a queue as the job listing shows it; times in Unix seconds, None when unknown."""

    id: str | None
    queue: str
    status: str
    payload: Any = None
    error: str | None = None  # the first line of the failure message
    stack_trace: str | None = None
    attempts: int | None = None
    created_at: float | None = None
    updated_at: float | None = None


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a queue's jobs, read live, and the number of jobs of that state in all."""

    jobs: tuple[Job, ...]
    total: int


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
