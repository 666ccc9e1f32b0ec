"""Bounded JSON for untrusted data (issue 15, item 2), at the unit level: every parser the collection
and the job listing use refuses what is too deep or too large as one malformed item."""

from __future__ import annotations

import base64
import json

import pytest

from exporter import untrusted
from exporter.sources.redis.events import CeleryEvents
from exporter.sources.redis.layouts.base import MAX_RAW, decoded, payload_job


@pytest.mark.parametrize("raw", ["[" * 100_000, '{"a":' * 50_000, "[" * 65 + "]" * 65, "x" * (2 << 20),
                                 '{"n": NaN}', b"\xff\xfe"], ids=["lists", "maps", "65-levels", "2MB", "NaN", "bytes"])
def test_refused_as_malformed(raw: str | bytes) -> None:
    with pytest.raises(untrusted.Malformed):
        untrusted.loads(raw)


def test_what_is_bounded_still_loads() -> None:
    assert untrusted.loads("[" * 64 + "]" * 64) == json.loads("[" * 64 + "]" * 64)
    assert untrusted.loads(b'{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}
    assert untrusted.loads('{"n": NaN}', finite=False)["n"] != 0  # NaN, read when asked for
    assert untrusted.depth({"a": [{"b": 1}]}) == 3


def test_json_bodies_never_carry_nan_or_infinity() -> None:
    text = untrusted.dumps({"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5], "c": "NaN"})
    assert json.loads(text) == {"a": None, "b": [None, None, 1.5], "c": "NaN"}
    assert "NaN" not in text.replace('"NaN"', "") and "Infinity" not in text


def test_job_payloads_are_bounded_text_when_not_bounded_json() -> None:
    assert decoded("[" * 100_000) == "[" * MAX_RAW + "…"
    assert payload_job("{" * 100_000, "q", "waiting").payload == {"raw": "{" * MAX_RAW + "…"}
    assert payload_job('{"id": 7, "data": {"n": NaN}}', "q", "waiting").id == "7"


def test_a_poisoned_celery_event_is_one_malformed_message() -> None:
    events = CeleryEvents("/0.celeryev/")
    events.handle("[" * 100_000, 0.0)
    body = base64.b64encode(b"[" * 100_000).decode()
    events.handle(json.dumps({"body": body, "properties": {"body_encoding": "base64"}}), 0.0)
    events.handle(json.dumps({"body": json.dumps({"type": "worker-online", "hostname": "w1", "freq": 2})}), 0.0)
    assert events.malformed == 2
    assert list(events.workers) == ["w1"]


def test_a_lone_surrogate_escape_becomes_the_replacement_character() -> None:
    """JSON may escape a lone UTF-16 surrogate ("\\ud800"); json decodes it to a str that no codec
    writes (a label value, a JSON answer), so any writer to Redis could break a render. A pair is one
    character and stays; a lone one, in a value or a key, becomes U+FFFD."""
    doc = untrusted.loads(b'{"queues": ["x\\ud800", "ok"], "smile": "\\ud83d\\ude00", "\\udc00k": {"n": "\\uDBFFz"}}')
    assert doc == {"queues": ["x\ufffd", "ok"], "smile": "\U0001f600", "\ufffdk": {"n": "\ufffdz"}}
    for text in (json.dumps(doc), "".join(doc["queues"])):
        text.encode()  # writable
    assert untrusted.loads('["\\\\ud800"]') == ["\\ud800"]  # an escaped backslash, not a surrogate
