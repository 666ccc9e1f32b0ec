"""What rules and shims derive from readings: operator `Ref` paths read from a snapshot (`read`), and
queue records matched, indexed and summarised by name and tenant (once per reading, cached).

`read` answers None for a missing source, key or step, never raises: an absent fact is reported as
null, never as a crash or a made-up zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exporter.model import QueueStats, Reading, Snapshot
from exporter.values import dig


def read(snapshot: Snapshot, source: str, path: str | None) -> Any:
    """`dig` into the current reading of a source; None while it is down."""
    reading = snapshot.reading(source)
    return dig(reading.details, path) if reading is not None else None


def matching_queues(reading: Reading | None, queue: str, tenant: str) -> list[QueueStats]:
    """Queue records of a reading by name (`*` any) and tenant (`""` none, `*` any)."""
    if reading is None:
        return []
    return [
        q for q in reading.queues
        if (queue == "*" or q.queue == queue) and (tenant == "*" or q.tenant == tenant)
    ]


class QueueIndex:
    """(tenant, queue) -> QueueStats for one reading, built once and reused while it is current."""

    def __init__(self) -> None:
        self._reading: Reading | None = None
        self._index: dict[tuple[str, str], QueueStats] = {}

    def get(self, reading: Reading, tenant: str, queue: str) -> QueueStats | None:
        if reading is not self._reading:
            self._index = {(q.tenant, q.queue): q for q in reading.queues}
            self._reading = reading
        return self._index.get((tenant, queue))


# States in which a job is being worked on, as each library names it: Redis libraries (active, reserved,
# wip, started), generic tables (processing), River and good_job (running), Oban (executing), Solid Queue
# (claimed), procrastinate (doing), graphile-worker (locked), pgmq (invisible: read, not yet deleted).
_ACTIVE = frozenset(("active", "reserved", "processing", "wip", "started", "running", "executing", "claimed",
                     "doing", "locked", "invisible"))
_DONE = frozenset(("completed", "finished"))


@dataclass(slots=True)
class QueueSummary:
    """One queue name over the matched tenants: totals, and the worst tenant for thresholds."""

    queue: str
    total: int = 0
    worst: int = -1
    worst_tenant: str = ""
    first_tenant: str = ""
    failed_total: int | None = None
    failed_worst: int | None = None
    active: int | None = None
    completed: int | None = None
    completed_last_hour: int | None = None  # summed over tenants; None when no tenant's backend knows


def summarize(reading: Reading, queue: str, tenant: str) -> dict[str, QueueSummary]:
    """One pass over a reading's queue records (tens of thousands with many tenants), by queue name."""
    out: dict[str, QueueSummary] = {}
    any_queue, any_tenant = queue == "*", tenant == "*"
    for q in reading.queues:
        if not ((any_queue or q.queue == queue) and (any_tenant or q.tenant == tenant)):
            continue
        s = out.get(q.queue)
        if s is None:
            s = out[q.queue] = QueueSummary(q.queue, first_tenant=q.tenant)
        s.total += q.depth
        if q.depth > s.worst:
            s.worst, s.worst_tenant = q.depth, q.tenant
        failed = q.failed
        if q.completed_last_hour is not None:
            s.completed_last_hour = (s.completed_last_hour or 0) + q.completed_last_hour
        for state, n in q.states:
            if state in _ACTIVE:
                s.active = (s.active or 0) + n
            elif state in _DONE:
                s.completed = (s.completed or 0) + n
            elif state == "failed" and failed is None:
                failed = n
        if failed is not None:
            s.failed_total = (s.failed_total or 0) + failed
            s.failed_worst = failed if s.failed_worst is None else max(s.failed_worst, failed)
    return dict(sorted(out.items()))


class SummaryCache:
    """`summarize` once per (reading, queue, tenant): evaluation runs on every snapshot swap, and most
    swaps leave a given reading unchanged."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, str], tuple[Reading, dict[str, QueueSummary]]] = {}

    def get(self, source: str, reading: Reading, queue: str, tenant: str) -> dict[str, QueueSummary]:
        key = (source, queue, tenant)
        hit = self._cache.get(key)
        if hit is None or hit[0] is not reading:
            hit = self._cache[key] = (reading, summarize(reading, queue, tenant))
        return hit[1]
