"""What a head item is worth: the timestamp field of a queue item, and whether it is a usable time.

Pure functions on the text of one item, shared by every op that reads a head (ops.py). The constants
every layout and op agree on live here, once.
"""

from __future__ import annotations

import re

from exporter import untrusted
from exporter.values import dig

EPOCH_2000 = 946684800.0  # a stored enqueue time before this is not one (a wrong unit, a zero, a counter)
# The most of one item (or any one value) the source holds: the lean connection keeps no more of a
# reply than this and hands TOO_BIG instead (wire.py), which no timestamp check accepts, so the item
# counts as malformed. Also the JSON bound of `pick` (untrusted.loads' default).
MAX_ITEM = 1 << 20
TOO_BIG = "\x00jobqueue: value over 1 MiB, not read"
WRONGTYPE = "!WRONGTYPE"  # the result of an op whose key holds another type

_WS = "[ \t\n\v\f\r]*"
_NUMBER = re.compile(r"-?[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?")
_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}")
_DIV = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
_FAST: dict[str, tuple[re.Pattern[str], str] | None] = {}
_SPANS: dict[str, tuple[float | None, float]] = {}


def kind_of(unit: str, latest: float) -> str:
    """What a stored timestamp of `unit` must look like to be accepted (see `valid`): a number that is a
    time from 2000 up to `latest` in its unit, or an ISO date-time."""
    return "iso" if unit == "iso" else f"ts:{unit}:{latest!r}"


def plausible(value: str, kind: str) -> bool:
    """Kind `ts:<unit>:<latest>`: a number that read in its unit (auto: by magnitude) is a time from
    2000-01-01 up to `latest`."""
    if _NUMBER.fullmatch(value) is None:
        return False
    span = _SPANS.get(kind)
    if span is None:
        if len(_SPANS) > 1000:  # `latest` moves every collection: keep the memo small
            _SPANS.clear()
        _, unit, latest = kind.split(":", 2)
        span = _SPANS[kind] = (_DIV.get(unit), float(latest))
    x, div = float(value), span[0]
    if div is not None:
        x = x / div
    elif x > 1e11:
        x = x / (1e9 if x > 1e17 else 1e6 if x > 1e14 else 1e3)
    return EPOCH_2000 <= x <= span[1]


def valid(value: str, kind: str) -> bool:
    """Is `value` a usable timestamp of `kind` (num, ts:..., iso, any)?"""
    if kind == "num":
        return _NUMBER.fullmatch(value) is not None
    if kind.startswith("ts:"):
        return plausible(value, kind)
    if kind == "iso":
        return _ISO.match(value) is not None
    return True


def number(value: str) -> bool:
    return _NUMBER.fullmatch(value) is not None


def fast_pattern(fields: str) -> tuple[re.Pattern[str], str] | None:
    """For a plain top-level key: a pattern that finds its value in flat JSON without decoding, and the
    quoted key to look for first; None for a dotted path or alternatives."""
    entry = _FAST.get(fields)
    if entry is None and fields not in _FAST:
        if "|" in fields or "." in fields:
            _FAST[fields] = None
            return None
        key = '"' + re.escape(fields) + '"' + _WS + ":" + _WS
        entry = _FAST[fields] = (re.compile(key + r'(?:"([^"\\]+)"|(-?[0-9][0-9.eE+-]*)' + _WS + "[,}])"),
                                 f'"{fields}"')
    return entry


def fast(item: str, entry: tuple[re.Pattern[str], str]) -> str | None:
    """A plain top-level key of flat JSON (no nested object), found by pattern: in flat JSON a key
    appears once, so the leftmost match is the key itself."""
    if not item.startswith("{") or item.find("{", 1) >= 0:
        return None
    pattern, needle = entry
    at = item.find(needle)
    while at >= 0:  # a plain find, then an anchored match: the key may also occur as a value
        match = pattern.match(item, at)
        if match:
            return match.group(1) or match.group(2)
        at = item.find(needle, at + 1)
    return None


def pick(item: str, fields: str) -> str | None:
    """The first present of the `|`-separated dotted `fields` of a JSON item, as text ("" = the item)."""
    if fields == "":
        return item
    entry = fast_pattern(fields)
    quick = fast(item, entry) if entry is not None else None
    if quick is not None:
        return quick
    try:  # depth 1000 and numbers as doubles: what the read path has always accepted
        doc = untrusted.loads(item, max_bytes=MAX_ITEM, max_depth=1000, finite=False)
    except (ValueError, TypeError):
        return None
    if not isinstance(doc, dict):
        return None
    for alt in fields.split("|"):
        value = dig(doc, alt, lists=False)  # a step into an array finds nothing
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):  # every number read as a double, printed with %.17g
            return format(float(value), ".17g")
        if isinstance(value, str) and value:
            return value
    return None
