"""Bounded JSON for data the exporter does not control (queue items, KV values, SQL rows, probe bodies).

One item nested 100,000 levels deep or ten megabytes long must cost one `malformed` count, never a
RecursionError that fails the whole source; and what goes out as JSON must be valid JSON, so NaN
and the infinities become `null` on the way out.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

MAX_BYTES = 1 << 20  # one item; a job payload larger than a megabyte is not something we read
MAX_DEPTH = 64  # real payloads nest a handful of levels; 64 leaves room and keeps every walk shallow


# A JSON escape of a UTF-16 surrogate ("\ud800"): json decodes a lone one to a str no codec can write
# (a label value, a JSON answer); checked on the raw text first, so ordinary items never pay for a walk.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class Malformed(ValueError):
    """Untrusted input that is not bounded, valid JSON; the caller counts it and skips it."""


def _reject_constant(name: str) -> Any:
    raise Malformed(f"{name} is not JSON")


def loads(raw: str | bytes | bytearray, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH,
          finite: bool = True) -> Any:
    """`json.loads` with a size bound, a depth bound and (when `finite`) no NaN/Infinity literals.

    Raises Malformed (a ValueError) for anything else, including input too deep for the C parser.
    """
    if len(raw) > max_bytes:
        raise Malformed(f"{len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        doc = json.loads(raw, parse_constant=_reject_constant) if finite else json.loads(raw)
    except RecursionError as err:
        raise Malformed("nested too deeply") from err
    except UnicodeDecodeError as err:
        raise Malformed("not UTF-8") from err
    except ValueError as err:
        raise Malformed(str(err)) from err
    if _openings(raw) > max_depth and depth(doc) > max_depth:  # counting brackets is C-fast; walk only if needed
        raise Malformed(f"nested deeper than {max_depth} levels")
    if _SURROGATE_ESCAPE.search(raw if isinstance(raw, bytes | bytearray) else raw.encode("utf-8", "surrogatepass")):
        doc = _replace_lone_surrogates(doc)
    return doc


def _replace_lone_surrogates(doc: Any) -> Any:
    """`doc` with every lone surrogate (a pair decodes to one character) replaced by U+FFFD."""
    if isinstance(doc, str):
        return _LONE_SURROGATE.sub("\ufffd", doc)
    if isinstance(doc, dict):
        return {_replace_lone_surrogates(k): _replace_lone_surrogates(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_replace_lone_surrogates(v) for v in doc]
    return doc


def _openings(raw: str | bytes | bytearray) -> int:
    if isinstance(raw, str):
        return raw.count("[") + raw.count("{")
    return raw.count(b"[") + raw.count(b"{")


def depth(doc: Any) -> int:
    """Nesting depth of a decoded JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(doc, 0)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, level + 1)
        stack.extend((child, level + 1) for child in children)
    return deepest


def finite(doc: Any) -> Any:
    """A copy of `doc` where NaN and +-Infinity are None, so the JSON that carries it stays valid."""
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: finite(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [finite(v) for v in doc]
    return doc


def dumps(doc: Any) -> str:
    """`json.dumps` that never writes NaN or Infinity (invalid JSON) and never fails on depth."""
    try:
        return json.dumps(doc, allow_nan=False)
    except ValueError:  # a non-finite float somewhere: the rare path pays for a copy
        return json.dumps(finite(doc), allow_nan=False)
    except RecursionError:
        return json.dumps({"error": "value_too_deep"})


JsonDumps = Callable[[Any], str]
