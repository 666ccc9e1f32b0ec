"""The value readers of exporter/values.py on literal inputs: paths, numbers, times."""

from __future__ import annotations

import pytest

from exporter.values import as_bool, as_int, as_number, as_time, dig, iso, iso_time, stored_time


@pytest.mark.parametrize(("raw", "unit", "expected"), [
    ("1700000000", "s", 1_700_000_000.0),
    ("1700000000.25", "s", 1_700_000_000.25),
    ("1700000000123", "ms", 1_700_000_000.123),
    ("1700000000123456", "us", 1_700_000_000.123456),
    ("1700000000123456789", "ns", 1_700_000_000.123456789),
    ("1700000000.5", "auto", 1_700_000_000.5),           # Sidekiq 7: float seconds
    ("1700000000500", "auto", 1_700_000_000.5),          # Sidekiq 8: integer milliseconds
    ("2023-11-14T22:13:20.000000Z", "iso", 1_700_000_000.0),  # RQ's utcformat
    ("2023-11-14T22:13:20", "iso", 1_700_000_000.0),     # naive: UTC, whatever the host's zone
    ("2023-11-14T23:13:20+01:00", "iso", 1_700_000_000.0),
])
def test_stored_time(raw: str, unit: str, expected: float) -> None:
    assert stored_time(raw, unit) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(("raw", "unit"), [("inf", "s"), ("nan", "ms"), ("1e999", "s"), ("x", "s"), ("2023-13", "iso")])
def test_stored_time_rejects(raw: str, unit: str) -> None:
    with pytest.raises(ValueError):
        stored_time(raw, unit)


def test_as_time_accepts_seconds_milliseconds_and_strings() -> None:
    assert as_time(1700000000) == 1700000000.0
    assert as_time(1700000000123) == 1700000000.123
    assert as_time("1700000000") == 1700000000.0
    assert as_time("1970-01-01T00:01:00Z") == 60.0
    assert as_time("2026-01-01T00:00:00+00:00") == 1767225600.0
    assert as_time(True) is None
    assert as_time("soon") is None


def test_dig_walks_mappings_and_list_indexes() -> None:
    doc = {"a": {"b": [{"c": 1}, {"c": 2}]}}
    assert dig(doc, "a.b.1.c") == 2
    assert dig(doc, "a.b.-1.c") == 2
    assert dig(doc, "a.b.2.c") is None
    assert dig(doc, "a.b.1.c", lists=False) is None  # the Lua twin's walk
    assert dig(doc, None) is None
    assert dig(None, "a") is None


def test_number_and_bool_readers() -> None:
    assert as_number("1.5") == 1.5
    assert as_number(True) is None
    assert as_number("inf") is None
    assert as_int("7.9") == 7
    assert as_bool("working") is True
    assert as_bool("paused") is False
    assert as_bool("maybe") is None


def test_as_time_reads_every_unit_and_zone() -> None:
    assert as_time(1_700_000_000_500_000) == pytest.approx(1_700_000_000.5)  # microseconds
    assert as_time("2023-11-14T22:13:20") == 1_700_000_000.0  # naive: UTC
    assert as_time("2026-11-23T11:09:07.967599552Z") == pytest.approx(1795432147.967599552, abs=1e-6)
    assert as_time("0001-01-01T00:00:00Z") is None  # Go's zero time
    assert iso(as_time("2023-11-14T22:13:20Z")) == "2023-11-14T22:13:20Z"


def test_a_well_shaped_but_impossible_time_is_no_time() -> None:
    """February 30th, month 99, year 0 or an offset of 25 hours match the RFC 3339 pattern but are no
    time: None, as every reader answers for what is not a time, never a ValueError that takes down the
    caller (a NATS registry's collection, a job listing, a health rule)."""
    for text in ("2026-02-30T10:00:00Z", "2026-99-01T00:00:00Z", "0000-01-01T00:00:00Z",
                 "2026-01-01T10:00:00+25:00", "2026-02-30 10:00:00"):
        assert iso_time(text) is None, text
        assert as_time(text) is None, text
    with pytest.raises(ValueError):
        stored_time("2026-02-30T10:00:00Z", "iso")  # a layout counts it as malformed
