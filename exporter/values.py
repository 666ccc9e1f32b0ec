"""Value readers: the one place that reads free-form JSON by a path and turns stored values into numbers,
booleans and times.

Sources read their backends' JSON with these (job payloads, registry entries, HTTP bodies), and the
health rules and shims read operator-written `Ref` paths into `Reading.details` with `dig`. Every reader
accepts a missing key, a wrong type or a null and answers None instead of raising: an absent fact is
reported as null, never as a crash or a made-up zero. `stored_time` is the strict exception: a layout
counts a stored value that is not a time as malformed, so it raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

Unit = Literal["s", "ms", "us", "ns", "iso", "auto"]
SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
DIVISOR = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
_MISSING = object()
# RFC 3339 as Go writes it (NATS, Kubernetes): up to nine fraction digits, which fromisoformat refuses.
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?$")


def dig(value: Any, path: str | None, *, lists: bool = True) -> Any:
    """The value at a dotted path (`checks.backups.rows.0.total`), or None when any step is missing.

    `lists=False` walks mappings only: a Redis item's field path never steps into an array (redis/items.py `pick`).
    """
    if path is None:
        return None
    for step in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(step, _MISSING)
        elif (lists and isinstance(value, list | tuple) and step.lstrip("-").isdigit()
              and -len(value) <= int(step) < len(value)):
            value = value[int(step)]
        else:
            return None
        if value is _MISSING:
            return None
    return value


def as_number(value: Any) -> float | None:
    """A finite number from an int, float or numeric string; None otherwise (bools are not numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def as_int(value: Any) -> int | None:
    """A whole number within float precision (|n| < 2**53); 1e308 is no count, not a 309-digit one."""
    number = as_number(value)
    return int(number) if number is not None and abs(number) < 2**53 else None


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


def epoch(number: float) -> float:
    """Unix seconds from a number in seconds, milliseconds, microseconds or nanoseconds, told apart by size
    (Sidekiq wrote float seconds before 8.0 and integer milliseconds since; JavaScript writes milliseconds)."""
    for limit, divisor in ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3)):
        if number > limit:
            return number / divisor
    return number


def iso_time(text: str) -> float | None:
    """Unix seconds from ISO 8601 / RFC 3339 (nine fraction digits allowed); no zone means UTC (what the
    libraries write, never the exporter's local zone); Go's zero time means no time."""
    text = text.strip()
    match = _RFC3339.match(text)
    try:  # the pattern's shape does not make a date: February 30th or a +25:00 offset is no time
        if match:
            base, frac, zone = match.groups()
            if base.startswith("0001-01-01"):
                return None
            stamp = datetime.fromisoformat(base + ("+00:00" if zone in (None, "Z") else zone))
            return stamp.timestamp() + (int(frac) / 10 ** len(frac) if frac else 0.0)
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError):
        return None


def as_time(value: Any) -> float | None:
    """Unix seconds from a number (any of the units `epoch` tells apart), a numeric string, an ISO 8601
    string or a datetime; None for anything else."""
    number = as_number(value)
    if number is not None:
        return epoch(number)
    if isinstance(value, str):
        return iso_time(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return None


def stored_time(raw: str | None, unit: Unit) -> float | None:
    """An enqueue time stored in a declared unit, in Unix seconds; ValueError when it is not a time."""
    if raw is None:
        return None
    if unit == "iso":
        stamp = iso_time(raw)
        if stamp is None:
            raise ValueError(f"not an ISO 8601 time: {raw!r}")
        return stamp
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(f"not a finite time: {raw!r}")
    # divided, not multiplied by SCALE: the same double the Redis ops compute (`plausible` in redis/items.py)
    return epoch(value) if unit == "auto" else value / DIVISOR[unit]


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
