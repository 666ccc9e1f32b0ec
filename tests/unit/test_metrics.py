"""The renderer: exact exposition lines, dropped series for down sources, format negotiation."""

from __future__ import annotations

import subprocess

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from exporter.metrics import (
    CONTENT_TYPES,
    CORE_METRICS,
    OPENMETRICS,
    TEXT,
    Exposition,
    Fragment,
    Renderer,
    catalogue,
    choose_format,
    escape,
    exporter_samples,
    number,
)
from exporter.model import QueueStats, Reading, Sample, SourceStatus
from tests.support import builders

NOW = 1_800_000_000.0


def render_source(status: SourceStatus, reading: Reading | None, errors: dict[str, int],
                  interval: float | None = None) -> Fragment:
    """One source rendered by a fresh renderer (nothing kept from another test)."""
    return Renderer().source(status, reading, errors, interval)


def build_exposition(fragments: list[Fragment], revision: str) -> Exposition:
    renderer = Renderer()
    return renderer.exposition([*fragments, renderer.samples(exporter_samples(revision, (0, 1)))])


def status(up: bool = True, name: str = "r") -> SourceStatus:
    return builders.status(name, up, NOW, duration=0.25, last_success=NOW - (0 if up else 60),
                           error=None if up else "boom", collections=3)


READING = Reading(
    queues=(
        QueueStats("events", 3, "t1", NOW - 42.5),
        QueueStats("default", 0, "", None, (("delayed", 2), ("reserved", 1)), failed=4, wait_seconds=7, paused=False),
        QueueStats("celery", 5, "", None),
    ),
    samples=(Sample("jobqueue_tenants", (), 1),),
    latency=0.001,
    malformed=2,
)


class TestRenderSource:
    def test_up_source_renders_every_series_exactly(self) -> None:
        out = {k: v.decode() for k, v in render_source(status(), READING, {}).items()}
        assert out["jobqueue_depth"] == (
            'jobqueue_depth{source="r",tenant="t1",queue="events"} 3\n'
            'jobqueue_depth{source="r",tenant="",queue="default"} 0\n'
            'jobqueue_depth{source="r",tenant="",queue="celery"} 5\n'
        )
        # empty queue: age 0 and no timestamp; a backend without times (celery): neither
        assert out["jobqueue_oldest_age_seconds"] == (
            'jobqueue_oldest_age_seconds{source="r",tenant="t1",queue="events"} 42.500\n'
            'jobqueue_oldest_age_seconds{source="r",tenant="",queue="default"} 0\n'
        )
        assert out["jobqueue_oldest_timestamp_seconds"] == (
            f'jobqueue_oldest_timestamp_seconds{{source="r",tenant="t1",queue="events"}} {NOW - 42.5:.3f}\n'
        )
        assert out["jobqueue_jobs"] == (
            'jobqueue_jobs{source="r",tenant="",queue="default",state="delayed"} 2\n'
            'jobqueue_jobs{source="r",tenant="",queue="default",state="reserved"} 1\n'
        )
        assert out["jobqueue_failed_jobs"] == 'jobqueue_failed_jobs{source="r",tenant="",queue="default"} 4\n'
        assert out["jobqueue_wait_seconds"] == 'jobqueue_wait_seconds{source="r",tenant="",queue="default"} 7\n'
        assert out["jobqueue_queue_paused"] == 'jobqueue_queue_paused{source="r",tenant="",queue="default"} 0\n'
        assert out["jobqueue_source_up"] == 'jobqueue_source_up{source="r",backend="redis"} 1\n'
        assert out["jobqueue_malformed_items"] == 'jobqueue_malformed_items{source="r"} 2\n'
        assert out["jobqueue_source_latency_seconds"] == 'jobqueue_source_latency_seconds{source="r"} 0.001\n'
        assert out["jobqueue_tenants"] == 'jobqueue_tenants{source="r"} 1\n'
        assert out["jobqueue_last_success_timestamp_seconds"] == (
            f'jobqueue_last_success_timestamp_seconds{{source="r"}} {int(NOW)}\n'
        )

    def test_down_source_keeps_status_and_drops_queue_series(self) -> None:
        out = render_source(status(up=False), None, {"unreachable": 2}, interval=15.0)
        assert set(out) == {"jobqueue_source_up", "jobqueue_collect_duration_seconds",
                            "jobqueue_source_interval_seconds", "jobqueue_last_success_timestamp_seconds",
                            "jobqueue_collect_errors"}
        assert out["jobqueue_source_interval_seconds"] == b'jobqueue_source_interval_seconds{source="r"} 15\n'
        assert out["jobqueue_source_up"] == b'jobqueue_source_up{source="r",backend="redis"} 0\n'
        assert out["jobqueue_collect_errors"] == b'jobqueue_collect_errors_total{source="r",kind="unreachable"} 2\n'

    def test_undeclared_sample_is_a_bug_not_silence(self) -> None:
        with pytest.raises(KeyError, match="jobqueue_nope"):
            render_source(status(), Reading(samples=(Sample("jobqueue_nope", (), 1),)), {})

    def test_failed_jobs_and_wait_per_tenant(self) -> None:
        """Tenants never merge: each keeps its own failed count and wait estimate."""
        reading = Reading(queues=(QueueStats("q", 0, "a", failed=2, wait_seconds=1.5),
                                  QueueStats("q", 0, "b", failed=3, wait_seconds=4)))
        out = render_source(status(), reading, {})
        assert out["jobqueue_failed_jobs"] == (
            b'jobqueue_failed_jobs{source="r",tenant="a",queue="q"} 2\n'
            b'jobqueue_failed_jobs{source="r",tenant="b",queue="q"} 3\n'
        )
        assert out["jobqueue_wait_seconds"] == (
            b'jobqueue_wait_seconds{source="r",tenant="a",queue="q"} 1.5\n'
            b'jobqueue_wait_seconds{source="r",tenant="b",queue="q"} 4\n'
        )


class TestExposition:
    def test_families_are_contiguous_with_one_header(self) -> None:
        a = render_source(status(name="a"), READING, {})
        b = render_source(status(name="b"), READING, {})
        text = build_exposition([a, b], "abc123").body(TEXT).decode()
        assert text.count("# TYPE jobqueue_depth gauge\n") == 1
        block = text.split("# TYPE jobqueue_depth gauge\n", 1)[1].split("# HELP", 1)[0]
        assert [line.split("{")[1].split(",")[0] for line in block.splitlines()] == ['source="a"'] * 3 + [
            'source="b"'
        ] * 3
        assert 'jobqueue_exporter_build_info{version="0.1.0",revision="abc123"} 1\n' in text
        assert "\njobqueue_exporter_shard_ordinal 0\n" in text
        assert "\njobqueue_exporter_total_shards 1\n" in text
        assert "# TYPE jobqueue_collect_errors_total counter" not in text  # no errors: no family
        assert "process_resident_memory_bytes" in text

    def test_openmetrics_counter_and_eof(self) -> None:
        down = render_source(status(up=False), None, {"timeout": 1})
        body = build_exposition([down], "x").body(OPENMETRICS).decode()
        assert "# TYPE jobqueue_collect_errors counter\n" in body
        assert 'jobqueue_collect_errors_total{source="r",kind="timeout"} 1\n' in body
        assert body.endswith("# EOF\n") and body.count("# EOF") == 1
        text = build_exposition([down], "x").body(TEXT).decode()
        assert "# TYPE jobqueue_collect_errors_total counter\n" in text

    def test_gzip_is_built_once_and_decodes_to_the_body(self) -> None:
        import gzip

        exposition = build_exposition([render_source(status(), READING, {})], "x")
        packed = exposition.body(TEXT, gzipped=True)
        assert exposition.body(TEXT, gzipped=True) is packed
        assert gzip.decompress(packed) == exposition.body(TEXT)

    def exposition(self) -> object:
        return build_exposition([render_source(status(), READING, {}),
                                 render_source(status(False, "d"), None, {"timeout": 1})], "x")

    def test_promtool_check_metrics_is_clean(self) -> None:
        result = subprocess.run(["promtool", "check", "metrics"], input=self.exposition().body(TEXT),
                                capture_output=True)
        assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")

    def test_openmetrics_parses_strictly(self) -> None:
        body = self.exposition().body(OPENMETRICS).decode()
        families = {f.name: f for f in text_string_to_metric_families(body)}
        assert families["jobqueue_collect_errors"].type == "counter"
        assert families["jobqueue_depth"].samples[0].value == 3


@pytest.mark.parametrize(
    ("accept", "fmt"),
    [
        (None, TEXT),
        ("", TEXT),
        ("text/plain", TEXT),
        ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;"
         "version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,"
         "*/*;q=0.1", OPENMETRICS),
        ("text/plain;q=0.9,application/openmetrics-text;q=0.5", TEXT),
        ("application/openmetrics-text;q=0", TEXT),
    ],
)
def test_choose_format(accept: str | None, fmt: str) -> None:
    assert choose_format(accept) == fmt


@pytest.mark.parametrize(("raw", "escaped"), [("plain", "plain"), ('a"b', 'a\\"b'), ("a\\b", "a\\\\b"),
                                              ("a\nb", "a\\nb")])
def test_escape(raw: str, escaped: str) -> None:
    assert escape(raw) == escaped


@pytest.mark.parametrize(("value", "text"), [(3, "3"), (2.0, "2"), (0.25, "0.25"), (float("nan"), "NaN"),
                                             (float("inf"), "+Inf"), (True, "1")])
def test_number(value: float, text: str) -> None:
    assert number(value) == text


def test_metric_names_are_pinned() -> None:
    """A rename is a deliberate change here, in the alert rules and in the dashboards."""
    assert [m.name for m in CORE_METRICS] == [
        "jobqueue_depth", "jobqueue_oldest_age_seconds", "jobqueue_oldest_timestamp_seconds", "jobqueue_jobs",
        "jobqueue_failed_jobs", "jobqueue_wait_seconds", "jobqueue_queue_paused", "jobqueue_source_up",
        "jobqueue_source_latency_seconds", "jobqueue_source_interval_seconds", "jobqueue_collect_duration_seconds",
        "jobqueue_last_success_timestamp_seconds", "jobqueue_malformed_items", "jobqueue_series_collisions",
        "jobqueue_collect_errors",
    ]
    names = [m.name for m in catalogue()]
    assert len(names) == len(set(names))
    assert all(n.startswith("jobqueue_") for n in names)
    assert all(m.help.endswith(".") for m in catalogue())


def test_source_counters_get_the_total_suffix_in_both_formats() -> None:
    from exporter.sources.base import MetricDef, SourceConfig, SourceContext
    from tests.unit.test_scheduler import ScriptedSource

    class Counting(ScriptedSource):
        metrics = (MetricDef("jobqueue_test_events", "Events seen.", ("kind",), type="counter"),)

    renderer = Renderer([Counting("r", [1])])
    out = renderer.source(status(), Reading(samples=(Sample("jobqueue_test_events", ("a",), 3),)), {})
    assert out["jobqueue_test_events"] == b'jobqueue_test_events_total{source="r",kind="a"} 3\n'
    assert SourceConfig and SourceContext


def test_shard_of_the_config_is_exported() -> None:
    from exporter.cli import build_scheduler
    from exporter.config import parse_config

    config = parse_config('shard: "1/3"\nsources: [{name: h, type: system}]\n', "c", {})
    text = build_scheduler(config).exposition.body(TEXT).decode()
    assert "\njobqueue_exporter_shard_ordinal 1\n" in text
    assert "\njobqueue_exporter_total_shards 3\n" in text


def test_gzip_only_when_accepted_with_a_positive_q() -> None:
    from exporter.metrics import accepts_gzip

    assert [accepts_gzip(h) for h in ("gzip", "deflate, gzip;q=1.0", "*", "gzip;q=0.5", "x-gzip")] == [True] * 5
    assert [accepts_gzip(h) for h in (None, "", "gzip;q=0", "gzip; q=0.0", "identity", "*, gzip;q=0",
                                      "gzip;q=x", "deflate")] == [False] * 8


def test_scrape_form_names_the_format_and_encoding_in_the_headers() -> None:
    from exporter.metrics import scrape_form

    vary = "Accept, Accept-Encoding"
    assert scrape_form(None, None) == (TEXT, False, {"Content-Type": CONTENT_TYPES[TEXT], "Vary": vary})
    assert scrape_form("application/openmetrics-text;version=1.0.0", "gzip") == (OPENMETRICS, True, {
        "Content-Type": "application/openmetrics-text; version=1.0.0; charset=utf-8", "Vary": vary,
        "Content-Encoding": "gzip"})


def test_huge_numbers_are_written_as_floats_not_309_digits() -> None:
    from exporter.metrics import number

    assert [number(v) for v in (10**308, -(10**20), 10**400, 1e308, 2**53 - 1)] == [
        "1e+308", "-1e+20", "+Inf", "1e+308", "9007199254740991"]
