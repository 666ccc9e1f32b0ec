"""Defensive readers of `Reading.details`: rules and shims read other sources' facts through these.

Details are JSON-like values written by sources that evolve independently, so every reader here
accepts a missing key, a wrong type or a null and answers None (or an empty value) instead of
raising: an absent fact is reported as null, never as a crash or a made-up zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from exporter.model import QueueStats, Reading, Snapshot

_MISSING = object()


def dig(value: Any, path: str | None) -> Any:
    """The value at a dotted path (`checks.backups.rows.0.total`), or None when any step is missing."""
    if path is None:
        return None
    for step in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(step, _MISSING)
        elif isinstance(value, list | tuple) and step.lstrip("-").isdigit() and -len(value) <= int(step) < len(value):
            value = value[int(step)]
        else:
            return None
        if value is _MISSING:
            return None
    return value


def read(snapshot: Snapshot, source: str, path: str | None) -> Any:
    """`dig` into the current reading of a source; None while it is down."""
    reading = snapshot.reading(source)
    return dig(reading.details, path) if reading is not None else None


def as_number(value: Any) -> float | None:
    """A finite number from an int, float or numeric string; None otherwise (bools are not numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def as_int(value: Any) -> int | None:
    number = as_number(value)
    return int(number) if number is not None else None


def as_bool(value: Any) -> bool | None:
    """True/False from a bool, 0/1 or the usual words; None when it says neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("1", "true", "yes", "on", "working", "running", "enabled", "started"):
            return True
        if word in ("0", "false", "no", "off", "idle", "stopped", "disabled", "paused"):
            return False
    return None


def as_time(value: Any) -> float | None:
    """Unix seconds from a number (seconds, or milliseconds when huge) or an ISO 8601 string."""
    number = as_number(value)
    if number is not None:
        return number / 1000.0 if number > 1e11 else number
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if isinstance(value, datetime):
        return value.timestamp() if value.tzinfo else value.replace(tzinfo=UTC).timestamp()
    return None


def iso(ts: float | None, millis: bool = False) -> str | None:
    """Unix seconds as `2026-03-02T10:30:00Z` (or with `.000` milliseconds), None stays None."""
    if ts is None:
        return None
    try:
        moment = datetime.fromtimestamp(ts, UTC)
    except (ValueError, OverflowError, OSError):  # a stored time far outside the calendar: not a time
        return None
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if millis:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def checks_of(details: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """A source's checks as [{check, severity, count, files, error}], from a mapping or a list of records.

    `severity` is None for data checks (rows other rules read); only warn/info/error/critical checks
    are consistency checks.
    """
    raw = dig(details, "checks") if details is not None else None
    items: Iterable[tuple[str | None, Any]]
    if isinstance(raw, Mapping):
        items = raw.items()
    elif isinstance(raw, list):
        items = ((None, r) for r in raw)
    else:
        return []
    out = []
    for key, record in items:
        if not isinstance(record, Mapping):
            continue
        name = record.get("check") or record.get("name") or key
        if not isinstance(name, str):
            continue
        files = record.get("files", record.get("rows"))
        files = [dict(f) for f in files if isinstance(f, Mapping)] if isinstance(files, list) else []
        count = as_int(record.get("count"))
        severity = record.get("severity")
        out.append({
            "check": name,
            "severity": severity if severity in ("warn", "info", "error", "critical") else None,
            "count": count if count is not None else len(files),
            "files": files,
            "error": record.get("error") if isinstance(record.get("error"), str) else None,
        })
    return out


def matching_queues(reading: Reading | None, queue: str, tenant: str) -> list[QueueStats]:
    """Queue records of a reading by name (`*` any) and tenant (`""` none, `*` any)."""
    if reading is None:
        return []
    return [
        q for q in reading.queues
        if (queue == "*" or q.queue == queue) and (tenant == "*" or q.tenant == tenant)
    ]


def state_count(q: QueueStats, *states: str) -> int | None:
    """The sum of the named states of a queue record, or None when it keeps none of them."""
    found = [n for s, n in q.states if s in states]
    return sum(found) if found else None


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


_ACTIVE = frozenset(("active", "reserved", "processing", "wip", "started"))
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
