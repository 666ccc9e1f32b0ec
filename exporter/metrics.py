"""The metric catalogue and the one writer of the exposition, `Renderer`, owned by the daemon.

Every producer hands the renderer typed records: a source's `Reading` (queue stats and `Sample`s),
health's and the reloader's `Sample`s, the scheduler's own. Rendering happens once per source
collection (`Renderer.source`) and once per snapshot (`Renderer.exposition`): a scrape only copies
bytes. The text format and OpenMetrics share sample lines for gauges and counters; only the family
headers and the closing `# EOF` differ. What the renderer reuses between collections lives in the
renderer, never in the module.
"""

from __future__ import annotations

import asyncio
import math
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_latest_om

from exporter import __version__
from exporter.model import QueueStats, Reading, Sample, SourceStatus
from exporter.pools import RENDER
from exporter.sources import SOURCE_TYPES
from exporter.sources.base import MetricDef, Source

TEXT = "text"
OPENMETRICS = "openmetrics"
CONTENT_TYPES = {
    TEXT: "text/plain; version=0.0.4; charset=utf-8",
    OPENMETRICS: "application/openmetrics-text; version=1.0.0; charset=utf-8",
}

QUEUE_LABELS = ("tenant", "queue")

CORE_METRICS: tuple[MetricDef, ...] = (
    MetricDef("jobqueue_depth", "Items waiting (ready) in the queue at collection time.", QUEUE_LABELS),
    MetricDef(
        "jobqueue_oldest_age_seconds",
        "Age of the oldest waiting item at collection time; 0 when the queue is empty.",
        QUEUE_LABELS,
    ),
    MetricDef(
        "jobqueue_oldest_timestamp_seconds",
        "Enqueue time of the oldest waiting item; absent when the queue is empty.",
        QUEUE_LABELS,
    ),
    MetricDef("jobqueue_jobs", "Items of the queue per state, as the backend keeps them.", (*QUEUE_LABELS, "state")),
    MetricDef("jobqueue_failed_jobs", "Recently failed jobs, as the backend counts them.", QUEUE_LABELS),
    MetricDef(
        "jobqueue_wait_seconds",
        "Estimated wait before a new job starts: ready jobs x average runtime / processes (Horizon).",
        QUEUE_LABELS,
    ),
    MetricDef("jobqueue_queue_paused", "1 if the queue is paused, 0 if it is running.", QUEUE_LABELS),
    MetricDef(
        "jobqueue_source_up", "1 if the last collection of the source succeeded, else 0.", ("backend",)
    ),
    MetricDef("jobqueue_source_latency_seconds", "Round trip of the source's ping in the last collection."),
    MetricDef("jobqueue_source_interval_seconds", "The source's configured collection interval (staleness alerts "
              "scale with it)."),
    MetricDef("jobqueue_collect_duration_seconds", "How long the last collection of the source took."),
    MetricDef(
        "jobqueue_last_success_timestamp_seconds",
        "When the source last collected successfully (background collection: alert on time() - x).",
    ),
    MetricDef(
        "jobqueue_malformed_items",
        "Queue items the last collection could not parse and skipped.",
    ),
    MetricDef(
        "jobqueue_series_collisions",
        "Series the last collection produced more than once (two layouts or presets claiming one queue); "
        "each is emitted once, the first kept. Non-zero: give each app's layouts their own `tenant`.",
    ),
    MetricDef(
        "jobqueue_collect_errors",
        "Failed collections of the source since start, by kind of failure.",
        ("kind",),
        type="counter",
    ),
)

# Flow and workers: emitted by sources as `Sample`s (not every layout knows them), rendered like a
# source's own metrics. Counters come from a count the library keeps itself, never from the exporter.
FLOW_METRICS: tuple[MetricDef, ...] = (
    MetricDef("jobqueue_jobs_processed", "Jobs the library finished (success or failure), from the library's own "
              "count; queue is empty where the library counts only globally.", QUEUE_LABELS, type="counter"),
    MetricDef("jobqueue_jobs_failed", "Jobs that failed, from the library's own count; queue is empty where the "
              "library counts only globally.", QUEUE_LABELS, type="counter"),
    MetricDef("jobqueue_workers", "Live workers by state (busy, idle, paused; unknown where the library shows only "
              "that a worker is there); a worker whose heartbeat is older than the library's own expiry is not "
              "live. A worker serving several queues counts under each.",
              (*QUEUE_LABELS, "state")),
    MetricDef("jobqueue_worker_capacity", "Job slots (threads, concurrency) the live workers offer, where the "
              "library records it.", QUEUE_LABELS),
    MetricDef("jobqueue_worker_busy_slots", "Job slots of the live workers running a job now, where the library "
              "records it (utilisation = busy slots / capacity).", QUEUE_LABELS),
    MetricDef("jobqueue_job_runtime_seconds", "Average job runtime as the library keeps it.", QUEUE_LABELS),
)

HEALTH_METRICS: tuple[MetricDef, ...] = (
    MetricDef("jobqueue_health_status", "Status of a monitored system (ok, degraded, unhealthy): a state set "
              "exposed as a gauge with a `status` label, one series per state, exactly one is 1.",
              ("system", "status")),
    MetricDef("jobqueue_health_issue", "1 for each active issue of a system; `issue` is a stable id.",
              ("system", "issue")),
    MetricDef("jobqueue_health_quiet_hours", "1 while the system is inside its configured quiet hours.",
              ("system",)),
    MetricDef("jobqueue_worker_last_run_timestamp_seconds", "Last heartbeat or run of a background worker.",
              ("system", "worker")),
    MetricDef("jobqueue_worker_expected_interval_seconds", "How often the worker is expected to run (its "
              "configured interval); it is stale past 2.5 times that.", ("system", "worker")),
)

EXPORTER_METRICS: tuple[MetricDef, ...] = (
    MetricDef("jobqueue_exporter_build_info", "Version and revision of the running exporter; always 1.",
              ("version", "revision")),
    MetricDef("jobqueue_exporter_shard_ordinal",
              "Which shard of the tenants this replica reads (config `shard: i/N`)."),
    MetricDef("jobqueue_exporter_total_shards", "How many replicas share the tenants (config `shard: i/N`)."),
    MetricDef("jobqueue_exporter_config_last_reload_successful",
              "1 if the last config reload (SIGHUP, POST /-/reload) worked; 0 while a bad new config is refused."),
    MetricDef("jobqueue_exporter_config_last_reload_success_timestamp_seconds",
              "When the config was last loaded successfully (start or reload)."),
)


def catalogue(tables: Iterable[tuple[MetricDef, ...]] | None = None) -> tuple[MetricDef, ...]:
    """Core metrics first, then the given source types' own tables (default: every type of the type
    table, in its order), then health and the exporter's own; a name two types share is kept once."""
    seen: dict[str, MetricDef] = {}
    sources = (m for table in (tables if tables is not None else (t.metrics for t in SOURCE_TYPES.values()))
               for m in table)
    for metric in (*CORE_METRICS, *FLOW_METRICS, *sources, *HEALTH_METRICS, *EXPORTER_METRICS):
        seen.setdefault(metric.name, metric)
    return tuple(seen.values())


def escape(value: str) -> str:
    """Escape a label value for both exposition formats."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def number(value: float) -> str:
    """Format a sample value the way both formats accept."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        if abs(value) < 2**53:
            return str(value)
        try:  # a 309-digit counter read from a backend is written as a float, as Prometheus will read it
            value = float(value)
        except OverflowError:
            return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class _Lines:
    """Sample lines per metric name, appended in order and joined once."""

    def __init__(self) -> None:
        self.by_metric: dict[str, list[str]] = {}
        self.ready: dict[str, bytes] = {}  # whole blocks already encoded (the queue metrics)

    def add(self, metric: str, labels: str, value: float) -> None:
        self.by_metric.setdefault(metric, []).append(f"{metric}{{{labels}}} {number(value)}\n")

    def add_named(self, metric: str, sample: str, labels: str, value: float) -> None:
        series = f"{sample}{{{labels}}}" if labels else sample
        self.by_metric.setdefault(metric, []).append(f"{series} {number(value)}\n")

    def encoded(self) -> dict[str, bytes]:
        """The bytes per metric; each metric's text is let go as soon as it is encoded, so a large
        source never holds all its text and all its bytes at once."""
        out = dict(self.ready)
        for name in list(self.by_metric):
            text = "".join(self.by_metric.pop(name)).encode()
            out[name] = out[name] + text if name in out else text
        return out


_Extra = tuple[str, str, str, str, str]  # fixed age, paused, jobs, failed, wait lines ("" where none)
_NO_EXTRA: _Extra = ("", "", "", "", "")
_Entry = tuple[str, str, _Extra]  # labels, timestamp value, the rest
# A source's last render: its queues, their entries and the encoded blocks (all but the ages).
_Memo: TypeAlias = tuple[tuple[QueueStats, ...], list[_Entry], dict[str, bytes]]
Fragment: TypeAlias = dict[str, bytes]  # encoded sample lines per metric name, without headers


class Renderer:
    """The daemon's one exposition writer (the scheduler owns it): typed records in, bytes out.

    It keeps, per source, the queues of the last render and what their lines are made of, so an
    unchanged queue costs one identity check (sources reuse the record of a queue that did not
    change) and only its age is formatted anew. It declares the metrics of the configured sources'
    types only, so a daemon imports no source module (and backend client) it does not run.
    """

    def __init__(self, sources: Iterable[Source] | None = None) -> None:
        self._memo: dict[str, _Memo] = {}
        self._live: set[str] | None = None  # `source="..."` of the configured sources (None: any)
        self._memo_lock = threading.Lock()  # the render pool's threads against a reload's declare
        self._process = _process_registry()
        self.declare(sources)

    def declare(self, sources: Iterable[Source] | None) -> None:
        """The families this renderer writes: those of the types of `sources` (None: every type), in
        the type table's order; a type not configured is never imported. What was kept for a source
        no longer among them is dropped, and a render of it still running keeps nothing (see _queues)."""
        sources = None if sources is None else list(sources)
        with self._memo_lock:
            self._live = None if sources is None else {f'source="{escape(s.name)}"' for s in sources}
            for src in [s for s in self._memo if self._live is not None and s not in self._live]:
                del self._memo[src]
        if sources is None:
            self.catalogue = catalogue()
        else:
            rank = {name: i for i, name in enumerate(SOURCE_TYPES)}
            tables = {s.config.type: type(s).metrics for s in sources}
            self.catalogue = catalogue(tables[n] for n in sorted(tables, key=lambda n: (rank.get(n, len(rank)), n)))
        core, derived = {m.name for m in CORE_METRICS}, {m.name for m in (*HEALTH_METRICS, *EXPORTER_METRICS)}
        self._sourced = {m.name: m for m in self.catalogue if m.name not in core and m.name not in derived}
        self._derived = {m.name: m for m in self.catalogue if m.name in derived}

    def source(self, status: SourceStatus, reading: Reading | None, errors: Mapping[str, int],
               interval: float | None = None) -> Fragment:
        """Every sample of one source: status metrics always, queue series only when up."""
        out = _Lines()
        src = f'source="{escape(status.name)}"'
        out.add("jobqueue_source_up", f'{src},backend="{escape(status.backend)}"', 1 if status.up else 0)
        if interval is not None:
            out.add("jobqueue_source_interval_seconds", src, interval)
        out.add("jobqueue_collect_duration_seconds", src, status.duration)
        if status.last_success is not None:
            out.add("jobqueue_last_success_timestamp_seconds", src, status.last_success)
        for kind, count in sorted(errors.items()):
            out.add_named("jobqueue_collect_errors", "jobqueue_collect_errors_total", f'{src},kind="{kind}"', count)
        if reading is None:
            return out.encoded()
        if reading.latency is not None:
            out.add("jobqueue_source_latency_seconds", src, reading.latency)
        if reading.queues or reading.malformed:
            out.add("jobqueue_malformed_items", src, reading.malformed)
            out.add("jobqueue_series_collisions", src, len(reading.collisions))
        self._queues(out, src, status.observed_at, reading)
        for sample in reading.samples:
            metric = _declared(self._sourced, sample.metric)
            pairs = "".join(f',{k}="{escape(v)}"' for k, v in zip(metric.labels, sample.labels, strict=True))
            out.add_named(sample.metric, self._sample_name(metric), src + pairs, sample.value)
        return out.encoded()

    def samples(self, samples: Iterable[Sample]) -> Fragment:
        """The lines of samples that carry no `source` label (health, reload, the exporter's own), in order."""
        out = _Lines()
        for sample in samples:
            metric = _declared(self._derived, sample.metric)
            pairs = ",".join(f'{k}="{escape(v)}"' for k, v in zip(metric.labels, sample.labels, strict=True))
            out.add_named(sample.metric, self._sample_name(metric), pairs, sample.value)
        return out.encoded()

    def exposition(self, fragments: Iterable[Mapping[str, bytes]]) -> Exposition:
        """Group the fragments (each source's, then the derived ones) by metric name, in order."""
        parts: dict[str, list[bytes]] = {}
        for fragment in fragments:
            for name, body in fragment.items():
                parts.setdefault(name, []).append(body)
        return Exposition(parts, self.catalogue, self._process)

    @staticmethod
    def _sample_name(metric: MetricDef) -> str:
        return f"{metric.name}_total" if metric.type == "counter" else metric.name

    def _queues(self, out: _Lines, src: str, observed_at: float, reading: Reading) -> None:
        """The shared queue metrics: the hot loop of a large source, written as comprehensions over the
        queues, one metric at a time and each joined at once (the lines of one metric are alive together,
        never those of all: the peak memory of a large source).

        The memo of a source is ONE entry taken out at the start and put back at the end, so two renders
        of one source (a reload replacing it while the old render still runs) can never pair one
        render's queues with another's blocks: the later one just starts without a memo."""
        queues = reading.queues
        last, last_entries, blocks = self._memo.pop(src, ((), [], {}))  # a failed render leaves none behind
        if len(last) == len(queues):
            entries: list[_Entry | None] = [e if p is q or p == q else None
                                            for p, q, e in zip(last, queues, last_entries, strict=True)]
        else:
            entries = [None] * len(queues)
        # Every queue as last time: every block but the ages is the same text, so the same bytes.
        if not last or None in entries:
            blocks = {}
        if None in entries:  # a changed queue gets new lines; where tenants came or went, find by labels
            by_key: dict[tuple[str, str], tuple[QueueStats, _Entry]] | None = None
            for i, q in enumerate(queues):
                if entries[i] is not None:
                    continue
                if len(last) == len(queues) and last[i].tenant == q.tenant and last[i].queue == q.queue:
                    entries[i] = _queue_lines(src, q)
                    continue
                if by_key is None:
                    by_key = {(p.tenant, p.queue): (p, e) for p, e in zip(last, last_entries, strict=True)}
                p, e = by_key.get((q.tenant, q.queue), (None, None))
                entries[i] = e if e is not None and p == q else _queue_lines(src, q)
        done: list[_Entry] = entries  # type: ignore[assignment]  # every None was filled above
        plain = all(e[2] is _NO_EXTRA for e in done)
        texts: dict[str, Callable[[], str]] = {
            "jobqueue_depth": lambda: "".join([f"jobqueue_depth{e[0]}{q.depth}\n"
                                               for q, e in zip(queues, done, strict=True)]),
            "jobqueue_oldest_age_seconds": lambda: "".join([
                e[2][0] if (ts := q.oldest_timestamp) is None
                else f"jobqueue_oldest_age_seconds{e[0]}{age if (age := observed_at - ts) > 0 else 0.0:.3f}\n"
                for q, e in zip(queues, done, strict=True)]),
            "jobqueue_oldest_timestamp_seconds": lambda: "".join([
                f"jobqueue_oldest_timestamp_seconds{e[0]}{e[1]}" for e in done if e[1]]),
            "jobqueue_jobs": lambda: "" if plain else "".join([e[2][2] for e in done]),
            "jobqueue_queue_paused": lambda: "" if plain else "".join([e[2][1] for e in done]),
            "jobqueue_failed_jobs": lambda: "" if plain else "".join([e[2][3] for e in done]),
            "jobqueue_wait_seconds": lambda: "" if plain else "".join([e[2][4] for e in done]),
        }
        kept: dict[str, bytes] = {}
        for name, text in texts.items():
            known = blocks.get(name)
            body = known if known is not None else text().encode()
            if name != "jobqueue_oldest_age_seconds":
                kept[name] = body
            if body:
                out.ready[name] = body
        with self._memo_lock:  # a reload removed the source while this render ran: keep nothing of it
            if self._live is None or src in self._live:
                self._memo[src] = (queues, done, kept)


def _declared(metrics: Mapping[str, MetricDef], name: str) -> MetricDef:
    metric = metrics.get(name)
    if metric is None:
        raise KeyError(f"sample of undeclared metric {name!r}")
    return metric


def _queue_lines(src: str, q: QueueStats) -> _Entry:
    """A queue's labels (`{...} `), its timestamp as text (a float is costly to format), and the lines
    that depend on its record alone ("" where it has no such line): the age 0 of an empty queue (a
    non-empty one without a stored time has no age: unknown, so absent), paused, its jobs per state,
    failed jobs and the estimated wait."""
    tenant = q.tenant
    labels = f'{{{src},tenant="{escape(tenant) if tenant else ""}",queue="{escape(q.queue)}"'
    ts = q.oldest_timestamp
    extra = (
        f"jobqueue_oldest_age_seconds{labels}}} 0\n" if ts is None and q.depth == 0 else "",
        "" if q.paused is None else f"jobqueue_queue_paused{labels}}} {1 if q.paused else 0}\n",
        "".join(f'jobqueue_jobs{labels},state="{state}"}} {count}\n' for state, count in q.states),
        "" if q.failed is None else f"jobqueue_failed_jobs{labels}}} {q.failed}\n",
        "" if q.wait_seconds is None else f"jobqueue_wait_seconds{labels}}} {number(q.wait_seconds)}\n",
    )
    return f"{labels}}} ", "" if ts is None else f"{ts:.3f}\n", _NO_EXTRA if extra == _NO_EXTRA else extra


def _header(metric: MetricDef, fmt: str) -> bytes:
    help_text = metric.help.replace("\\", "\\\\").replace("\n", "\\n")
    name = metric.name
    if metric.type == "counter" and fmt == TEXT:
        name += "_total"
    return f"# HELP {name} {help_text}\n# TYPE {name} {metric.type}\n".encode()


def _process_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


@dataclass
class Exposition:
    """The bytes of one snapshot in both formats, each built and gzipped at most once."""

    parts: Mapping[str, list[bytes]]
    catalogue: tuple[MetricDef, ...]  # the families, in order; those without lines are left out
    process: CollectorRegistry  # the process's own metrics (prometheus_client's collectors)
    _cache: dict[tuple[str, bool], bytes] = field(default_factory=dict)
    _pending: dict[tuple[str, bool], asyncio.Future[bytes]] = field(default_factory=dict)
    _pieces: dict[str, list[bytes]] = field(default_factory=dict)

    def body(self, fmt: str, gzipped: bool = False) -> bytes:
        """The exposition in `fmt` (TEXT or OPENMETRICS), optionally gzip-compressed."""
        key = (fmt, gzipped)
        if key not in self._cache:
            if gzipped:
                # Compressed from the chunks, never from an assembled copy: Prometheus asks for gzip,
                # and the uncompressed body of a large source would be one more copy of every line.
                # Level 1: a third of the CPU of the default for a few percent more bytes.
                packer = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: gzip framing, mtime 0
                parts = [packer.compress(chunk) for chunk in self._chunks(fmt)]
                self._cache[key] = b"".join([*parts, packer.flush()])
            else:
                self._cache[key] = b"".join(self._chunks(fmt))
        return self._cache[key]

    async def body_async(self, fmt: str, gzipped: bool = False) -> bytes:
        """`body`, built at most once in a worker thread however many scrapes ask at the same time."""
        key = (fmt, gzipped)
        if key in self._cache:
            return self._cache[key]
        if key not in self._pending:
            # RENDER, not the loop's default pool: name lookups queue there, and a scrape must not wait on them
            future = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(RENDER, self.body, fmt, gzipped))
            future.add_done_callback(lambda f: self._forget_failed(key, f))
            self._pending[key] = future
        return await asyncio.shield(self._pending[key])

    def _forget_failed(self, key: tuple[str, bool], future: asyncio.Future[bytes]) -> None:
        """A failed build is not cached: the next scrape tries again instead of failing the same way."""
        if future.cancelled() or future.exception() is not None:
            self._pending.pop(key, None)

    def _chunks(self, fmt: str) -> list[bytes]:
        """The pieces of the body, kept (they are the fragments' own bytes) so that the plain and the
        gzipped body of one snapshot carry the same process metrics."""
        if fmt not in self._pieces:
            self._pieces[fmt] = self._build(fmt)
        return self._pieces[fmt]

    def _build(self, fmt: str) -> list[bytes]:
        chunks: list[bytes] = []
        for metric in self.catalogue:
            body = self.parts.get(metric.name)
            if not body:
                continue
            chunks.append(_header(metric, fmt))
            chunks.extend(body)
        if fmt == OPENMETRICS:
            own_om: bytes = generate_latest_om(self.process)  # type: ignore[no-untyped-call]  # prometheus_client leaves it untyped
            chunks.append(own_om.removesuffix(b"# EOF\n"))
            chunks.append(b"# EOF\n")
        else:
            chunks.append(generate_latest(self.process))
        return chunks


def exporter_samples(revision: str, shard: tuple[int, int]) -> tuple[Sample, ...]:
    """The exporter's own series: version and revision, and which shard of the tenants it reads."""
    return (Sample("jobqueue_exporter_build_info", (__version__, revision), 1),
            Sample("jobqueue_exporter_shard_ordinal", (), shard[0]),
            Sample("jobqueue_exporter_total_shards", (), shard[1]))


def accepts_gzip(accept_encoding: str | None) -> bool:
    """True when the client accepts gzip with q > 0 (`gzip;q=0` refuses it; `*` accepts it unless refused)."""
    found: dict[str, float] = {}
    for part in (accept_encoding or "").split(","):
        coding, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            if param.replace(" ", "").startswith("q="):
                try:
                    q = float(param.split("=", 1)[1])
                except ValueError:
                    q = 0.0
        found[coding.lower()] = q
    q = found.get("gzip", found.get("x-gzip", found.get("*", 0.0)))
    return q > 0


def scrape_form(accept: str | None, accept_encoding: str | None) -> tuple[str, bool, dict[str, str]]:
    """The format and encoding a scrape asked for, and the response headers that say so: one place for
    both /metrics handlers (the main listener's and `scrape_listen`'s), which must answer alike."""
    fmt = choose_format(accept)
    gzipped = accepts_gzip(accept_encoding)
    headers = {"Content-Type": CONTENT_TYPES[fmt], "Vary": "Accept, Accept-Encoding"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return fmt, gzipped, headers


def choose_format(accept: str | None) -> str:
    """OpenMetrics when the client prefers it (Prometheus does by default), else the text format."""
    best, best_q = TEXT, -1.0
    for part in (accept or "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if media == "application/openmetrics-text" and q > best_q and q > 0:
            best, best_q = OPENMETRICS, q
        elif media in ("text/plain", "*/*") and q > best_q:
            best, best_q = TEXT, q
    return best
