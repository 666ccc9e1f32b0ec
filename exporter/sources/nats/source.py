"""NATS JetStream source (nats-py): streams, consumers, KV, object stores, dead letters, registries.

Read-only by construction: one `$JS.API.INFO`, `STREAM.LIST` and `CONSUMER.LIST` paged to the end
(the server pages by 256; nats-py's helpers return the first page only), `STREAM.INFO` with a
subject filter for KV keys and `STREAM.MSG.GET last_by_subj` for each key's latest revision. The
only subscription is the optional max-deliveries advisory listener. Nothing is ever created.

`Reading.details` keys (what `/api/health/status` of the NATS job-platform seed needs):
  nats           {url, version, connected (always true in a reading), rtt_seconds}
  account        {memory, storage, streams, consumers}: JetStream account usage
  streams        [{name, messages, bytes, consumers, first_ts, last_ts}]  (included streams)
  consumers      {total, consumers: [{stream, name, pending, ack_pending, redelivered, waiting}]}
  kv_buckets     [{name, keys, values, bytes}]: keys = live keys (null past kv.max_keys), values = revisions
  object_stores  [{name, size}]
  dead_letters   {mode, total, consumers: [{stream, consumer, count}]}
  jobs           {bucket, exists, total, unprocessed, processing, completed, failed, dlq, other,
                  oldest_unprocessed}  (only when `jobs` is configured)
  agents         {bucket, exists, total, ready, agents: [{hostname, labels, status, last_heartbeat, ready}]}
                 (only when `agents` is configured; last_heartbeat in Unix seconds)
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeoutError

from exporter.facts import ConsumerInfo, NatsState, RegistryJobs, StreamInfo
from exporter.model import QueueStats, Reading, Sample
from exporter.redact import redact_url_list
from exporter.sources.base import (
    MetricDef,
    NotFound,
    Retained,
    SourceContext,
    SourceDenied,
    SourceError,
    read_secret,
    unreachable,
)
from exporter.sources.base import Source as BaseSource
from exporter.sources.nats.config import NatsConfig
from exporter.sources.nats.parse import (
    ADVISORY_MAX_DELIVERIES,
    ConsumerRecord,
    KvEntry,
    StreamRecord,
    advisory_target,
    parse_consumer,
    parse_kv_message,
    parse_stream,
    plain_url,
)
from exporter.sources.nats.registry import read_agents, read_jobs

log = logging.getLogger("jobqueue.nats")


T = TypeVar("T")


class NatsSource(BaseSource):
    """Reads JetStream state from one NATS server; never writes."""

    backend = "nats"
    config_model = NatsConfig
    metrics = (
        MetricDef("jobqueue_nats_server_info", "The NATS server the source is connected to; always 1.",
                  ("url", "version")),
        MetricDef("jobqueue_nats_account_streams", "Streams in the JetStream account."),
        MetricDef("jobqueue_nats_account_consumers", "Consumers in the JetStream account."),
        MetricDef("jobqueue_nats_account_storage_bytes", "File storage the JetStream account uses."),
        MetricDef("jobqueue_nats_account_memory_bytes", "Memory storage the JetStream account uses."),
        MetricDef("jobqueue_nats_stream_bytes", "Bytes stored in the stream.", ("stream",)),
        MetricDef("jobqueue_nats_stream_consumers", "Consumers of the stream.", ("stream",)),
        MetricDef("jobqueue_nats_consumer_pending", "Messages of the stream not yet delivered to the consumer.",
                  ("stream", "consumer")),
        MetricDef("jobqueue_nats_consumer_ack_pending", "Messages delivered to the consumer and not yet acknowledged.",
                  ("stream", "consumer")),
        MetricDef("jobqueue_nats_consumer_redelivered", "Messages redelivered and not yet acknowledged.",
                  ("stream", "consumer")),
        MetricDef("jobqueue_nats_consumer_delivered", "Deliveries to the consumer so far, redeliveries included "
                  "(the consumer's delivered sequence).", ("stream", "consumer"), type="counter"),
        MetricDef("jobqueue_nats_consumer_acked", "Deliveries up to the consumer's ack floor: every one of them "
                  "is acknowledged (the ack floor's consumer sequence).", ("stream", "consumer"), type="counter"),
        MetricDef("jobqueue_nats_consumer_waiting", "Pull requests waiting on the consumer.", ("stream", "consumer")),
        MetricDef("jobqueue_nats_kv_keys", "Live keys in the KV bucket (deleted and purged keys excluded).",
                  ("bucket",)),
        MetricDef("jobqueue_nats_kv_bytes", "Bytes stored in the KV bucket, all revisions.", ("bucket",)),
        MetricDef("jobqueue_nats_object_store_bytes", "Bytes stored in the object store.", ("bucket",)),
        MetricDef("jobqueue_nats_dead_letters", "Messages that hit max deliveries: advisories received since the "
                  "exporter started (mode subscribe) or kept by the capture stream (mode stream).",
                  ("stream", "consumer")),
        MetricDef("jobqueue_nats_agents", "Agents in the agent registry, by readiness.", ("ready",)),
        MetricDef("jobqueue_nats_agent_heartbeat_timestamp_seconds", "Last heartbeat of a registered agent.",
                  ("agent",)),
    )

    def __init__(self, config: NatsConfig, context: SourceContext) -> None:
        super().__init__(config, context)
        self.config: NatsConfig = config
        self.nc: NATS | None = None
        self.dead: dict[tuple[str, str], int] = {}
        self._sem = asyncio.Semaphore(config.concurrency)
        self._clean = True
        self._denied: str | None = None
        self._memo: dict[str, asyncio.Future[Any]] = {}  # bucket reads shared within one collection
        self._processed: dict[str, Retained] = {}  # per stream: its consumers' ack floors, kept past deletion

    async def collect(self) -> Reading:
        clean, self._clean = self._clean, False
        self._denied = None
        if not clean:  # the last collection failed or was cancelled mid-request: start afresh
            await self._drop()
        try:
            reading = await self._collect()
            self._clean = True
            return reading
        except NatsTimeoutError:
            raise  # a TimeoutError: the scheduler records kind "timeout"
        except NoRespondersError as err:
            raise SourceError("no JetStream responders: is JetStream enabled for this account?") from err
        except (OSError, NatsError) as err:
            if "authorization" in str(err).lower():
                raise SourceDenied(f"nats refused the exporter: {err}") from err
            raise unreachable(f"nats unreachable: {type(err).__name__}: {err}", err) from err
        finally:
            self._settle_memo()

    def _settle_memo(self) -> None:
        """Cancel bucket reads a failed collection left behind and mark their errors as seen."""
        for future in self._memo.values():
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()
        self._memo = {}

    async def _connection(self) -> NATS:
        """The live connection, opened when there is none; a lost one is replaced, never waited for."""
        if self.nc is not None and self.nc.is_connected:
            return self.nc
        if self.nc is not None:
            await self._drop()
        cfg = self.config
        nc = NATS()

        async def quiet(err: Exception) -> None:
            if "permissions violation" in str(err).lower():  # the request it concerns will time out
                self._denied = str(err)
            log.debug("nats client error", extra={"source": self.name, "error": str(err)})

        connect = nc.connect(
            # no reconnect loop of nats-py's own: a lost connection is replaced by the next collection;
            # max_reconnect_attempts=1 bounds the initial attempts to two per server, 50 ms apart
            servers=[u.strip() for u in cfg.url.split(",")], name="jobqueue-exporter", allow_reconnect=False,
            max_reconnect_attempts=1, reconnect_time_wait=0.05,  # type: ignore[arg-type]  # nats-py types it int, sleeps a float
            connect_timeout=min(cfg.connect_timeout, cfg.timeout),  # type: ignore[arg-type]  # as above: a float works
            error_cb=quiet, user=cfg.user,
            password=read_secret(cfg.password, cfg.password_file), token=read_secret(cfg.token, cfg.token_file),
            user_credentials=str(cfg.creds_file) if cfg.creds_file else None,
            nkeys_seed=str(cfg.nkeys_seed_file) if cfg.nkeys_seed_file else None,
            tls=cfg.tls.context() if cfg.tls is not None else None,
        )
        try:
            await connect
        except NoServersError as err:
            raise unreachable(f"nats unreachable at {self._safe_url()}: {nc.last_error or err}",
                              nc.last_error or err) from err
        self.nc = nc
        if cfg.dead_letters.mode == "subscribe":
            await nc.subscribe(f"{ADVISORY_MAX_DELIVERIES}.*.*", cb=self._on_advisory)
        return nc

    def _safe_url(self) -> str:
        """The configured URL without user info, for messages."""
        return redact_url_list(self.config.url)

    async def _on_advisory(self, msg: Msg) -> None:
        target = advisory_target(msg.subject)
        if target is not None:
            self.dead[target] = self.dead.get(target, 0) + 1

    async def _drop(self) -> None:
        nc, self.nc = self.nc, None
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except Exception:  # closing a broken connection may fail; nothing is left to release
                log.debug("close failed", exc_info=True, extra={"source": self.name})

    async def _api(self, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One JetStream API request; API errors become SourceErrors (404 -> NotFound for callers)."""
        assert self.nc is not None
        async with self._sem:
            try:  # a little under the collection's own timeout, so that a refusal can be told apart
                msg = await self.nc.request(f"{self.config.api_prefix}.{subject}",
                                            json.dumps(body).encode() if body else b"",
                                            timeout=self.config.timeout * 0.8)
            except NatsTimeoutError as err:
                if self._denied:
                    raise SourceDenied(f"nats refused a read: {self._denied}") from err
                raise
        resp: dict[str, Any] = json.loads(msg.data)
        error = resp.get("error")
        if error:
            code = error.get("code")
            if code == 404:
                raise NotFound(f"{subject}: {error.get('description', 'not found')}")
            if code in (401, 403):
                raise SourceDenied(f"{subject}: {error.get('description')}")
            raise SourceError(f"{subject}: {error.get('description')} (code {code})")
        return resp

    async def _paged(self, subject: str, key: str, extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a paged JetStream listing: first page, then the remaining offsets concurrently."""
        first = await self._api(subject, {"offset": 0, **(extra or {})})
        items: list[dict[str, Any]] = list(first.get(key) or [])
        total, limit = int(first.get("total", 0)), int(first.get("limit") or len(items) or 1)
        offsets = range(len(items), total, limit) if items else ()
        pages = await asyncio.gather(*(self._api(subject, {"offset": o, **(extra or {})}) for o in offsets))
        for page in pages:
            items.extend(page.get(key) or [])
        while len(items) < total:  # the listing grew or the server used a smaller page: keep going
            more = (await self._api(subject, {"offset": len(items), **(extra or {})})).get(key) or []
            if not more:
                break
            items.extend(more)
        return items

    async def subjects(self, stream: str, subject_filter: str) -> dict[str, int]:
        """Messages per subject of `stream` under `subject_filter`, paged to the end."""
        out: dict[str, int] = {}
        while True:
            resp = await self._api(f"STREAM.INFO.{stream}", {"subjects_filter": subject_filter, "offset": len(out)})
            page = (resp.get("state") or {}).get("subjects") or {}
            out.update(page)
            if not page or len(out) >= int(resp.get("total", len(out))):
                return out

    async def kv_entries(self, bucket: str, limit: int | None = None) -> list[KvEntry] | None:
        """Latest revision of every key of a bucket; None when it has more keys than `limit`.

        Read once per collection even when the key count and a registry both need the bucket.
        """
        if f"subjects:{bucket}" not in self._memo:
            self._memo[f"subjects:{bucket}"] = asyncio.ensure_future(self.subjects(f"KV_{bucket}", f"$KV.{bucket}.>"))
        subjects = await self._memo[f"subjects:{bucket}"]
        if limit is not None and len(subjects) > limit:
            return None
        if f"entries:{bucket}" not in self._memo:
            self._memo[f"entries:{bucket}"] = asyncio.ensure_future(self._read_keys(bucket, subjects))
        entries: list[KvEntry] = await self._memo[f"entries:{bucket}"]
        return entries

    async def _read_keys(self, bucket: str, subjects: dict[str, int]) -> list[KvEntry]:
        stream = f"KV_{bucket}"

        async def last(subject: str) -> KvEntry | None:
            try:
                resp = await self._api(f"STREAM.MSG.GET.{stream}", {"last_by_subj": subject})
            except NotFound:  # removed since the listing
                return None
            return parse_kv_message(bucket, resp["message"])

        found = await asyncio.gather(*(last(s) for s in subjects))
        return [e for e in found if e is not None]

    async def _collect(self) -> Reading:
        cfg = self.config
        nc = await self._connection()
        self._memo = {}
        started = time.perf_counter()
        await nc.flush(timeout=cfg.timeout)  # type: ignore[arg-type]  # nats-py types it int; a float works
        latency = time.perf_counter() - started
        account = await self._api("INFO")
        by_name = {s.name: s for s in map(parse_stream, await self._paged("STREAM.LIST", "streams"))}
        streams = sorted(by_name.values(), key=lambda s: s.name)  # deduplicated: pages may overlap
        kept = [s for s in streams if cfg.streams.keep(s.name)]
        kv = [s for s in streams if s.name.startswith("KV_") and cfg.kv.keep(s.name[3:])]
        objs = [s for s in streams if s.name.startswith("OBJ_") and cfg.object_stores.keep(s.name[4:])]
        consumers, kv_keys, dead, jobs, agents = await asyncio.gather(
            self._consumers(kept), self._kv_keys(kv), self._dead_letters(),
            self._maybe(cfg.jobs, lambda j: read_jobs(self, j, by_name)),
            self._maybe(cfg.agents, lambda a: read_agents(self, a, by_name, time.time())),
        )
        return self._reading(nc, latency, account, kept, consumers, kv, kv_keys, objs, dead, jobs, agents)

    @staticmethod
    async def _maybe(spec: Any, read: Callable[[Any], Awaitable[T]]) -> T | None:
        return None if spec is None else await read(spec)

    async def _consumers(self, streams: list[StreamRecord]) -> list[ConsumerRecord]:
        cfg = self.config.consumers
        async def listing(stream: str) -> list[dict[str, Any]]:
            try:
                return await self._paged(f"CONSUMER.LIST.{stream}", "consumers")
            except NotFound:  # the stream was deleted since STREAM.LIST
                return []

        pages = await asyncio.gather(*(listing(s.name) for s in streams if s.consumers))
        unique = {(r.stream, r.name): r for r in (parse_consumer(c) for page in pages for c in page)}
        records = [unique[k] for k in sorted(unique)]
        return [c for c in records if cfg.keep(c.name) and (c.durable or cfg.ephemeral)]

    async def _kv_keys(self, buckets: list[StreamRecord]) -> list[int | None]:
        if not self.config.kv.count_keys:
            return [None] * len(buckets)
        async def count(bucket: str) -> list[KvEntry] | None:
            try:
                return await self.kv_entries(bucket, self.config.kv.max_keys)
            except NotFound:  # the bucket was deleted since STREAM.LIST
                return None

        found = await asyncio.gather(*(count(b.name[3:]) for b in buckets))
        return [None if entries is None else sum(e.live for e in entries) for entries in found]

    async def _dead_letters(self) -> dict[tuple[str, str], int]:
        spec = self.config.dead_letters
        if spec.mode == "subscribe":
            return dict(self.dead)
        if spec.mode == "off" or spec.stream is None:
            return {}
        counts: dict[tuple[str, str], int] = {}
        for subject, n in (await self.subjects(spec.stream, f"{ADVISORY_MAX_DELIVERIES}.>")).items():
            target = advisory_target(subject)
            if target is not None:
                counts[target] = counts.get(target, 0) + n
        return counts

    def _reading(self, nc: NATS, latency: float, account: dict[str, Any], streams: list[StreamRecord],
                 consumers: list[ConsumerRecord], kv: list[StreamRecord], kv_keys: list[int | None],
                 objs: list[StreamRecord], dead: dict[tuple[str, str], int], jobs: Any, agents: Any) -> Reading:
        server = nc.connected_url
        url = plain_url(server.scheme, server.hostname, server.port) if server else self._safe_url()
        v = nc.connected_server_version
        version = f"{v.major}.{v.minor}.{v.patch}" + (f"-{v.prerelease}" if v.prerelease else "")
        samples: list[Sample] = [
            Sample("jobqueue_nats_server_info", (url, version), 1),
            Sample("jobqueue_nats_account_streams", (), int(account.get("streams", 0))),
            Sample("jobqueue_nats_account_consumers", (), int(account.get("consumers", 0))),
            Sample("jobqueue_nats_account_storage_bytes", (), int(account.get("storage", 0))),
            Sample("jobqueue_nats_account_memory_bytes", (), int(account.get("memory", 0))),
        ]
        queues = [QueueStats(s.name, s.messages, oldest_timestamp=s.first_ts) for s in streams]
        for s in streams:
            samples.append(Sample("jobqueue_nats_stream_bytes", (s.name,), s.bytes))
            samples.append(Sample("jobqueue_nats_stream_consumers", (s.name,), s.consumers))
        for c in consumers:
            labels = (c.stream, c.name)
            samples += [Sample("jobqueue_nats_consumer_pending", labels, c.pending),
                        Sample("jobqueue_nats_consumer_ack_pending", labels, c.ack_pending),
                        Sample("jobqueue_nats_consumer_redelivered", labels, c.redelivered),
                        Sample("jobqueue_nats_consumer_waiting", labels, c.waiting),
                        Sample("jobqueue_nats_consumer_delivered", labels, c.delivered),
                        Sample("jobqueue_nats_consumer_acked", labels, c.acked)]
        # jobqueue_jobs_processed per stream: the consumers' ack floors added up (deliveries below the
        # floor are acknowledged or were superseded by a redelivery); on a stream that several consumers
        # each read in full, every consumer's work counts. A deleted consumer's last floor stays in the
        # sum (Retained), so the counter never drops. NATS keeps no count of failures.
        floors: dict[str, dict[str, tuple[float, ...]]] = {}
        for c in consumers:
            floors.setdefault(c.stream, {})[c.name] = (float(c.acked),)
        self._processed = {s.name: self._processed.get(s.name, Retained()) for s in streams
                           if s.name in floors or s.name in self._processed}  # a deleted stream starts anew
        for stream, retained in self._processed.items():
            (n,) = retained.total(floors.get(stream, {}), 1)
            samples.append(Sample("jobqueue_jobs_processed", ("", stream), n))
        for b, keys in zip(kv, kv_keys, strict=True):
            if keys is not None:
                samples.append(Sample("jobqueue_nats_kv_keys", (b.name[3:],), keys))
            samples.append(Sample("jobqueue_nats_kv_bytes", (b.name[3:],), b.bytes))
        for o in objs:
            samples.append(Sample("jobqueue_nats_object_store_bytes", (o.name[4:],), o.bytes))
        if self.config.dead_letters.mode != "off":
            # every consumer in scope from the first collection, at 0 until its first advisory: a series
            # that only appears with the first dead letter hides that batch from increase()
            dead = {**{(c.stream, c.name): 0 for c in consumers}, **dead}
        dead = {k: n for k, n in sorted(dead.items())
                if self.config.streams.keep(k[0]) and self.config.consumers.keep(k[1])}
        for (stream, consumer), n in dead.items():
            samples.append(Sample("jobqueue_nats_dead_letters", (stream, consumer), n))
        details: dict[str, Any] = {
            "nats": {"url": url, "version": version, "connected": True, "rtt_seconds": latency},
            "account": {k: int(account.get(k, 0)) for k in ("memory", "storage", "streams", "consumers")},
            "streams": [{"name": s.name, "messages": s.messages, "bytes": s.bytes, "consumers": s.consumers,
                         "first_ts": s.first_ts, "last_ts": s.last_ts} for s in streams],
            "consumers": {"total": len(consumers), "consumers": [
                {"stream": c.stream, "name": c.name, "pending": c.pending, "ack_pending": c.ack_pending,
                 "redelivered": c.redelivered, "waiting": c.waiting} for c in consumers]},
            "kv_buckets": [{"name": b.name[3:], "keys": k, "values": b.messages, "bytes": b.bytes}
                           for b, k in zip(kv, kv_keys, strict=True)],
            "object_stores": [{"name": o.name[4:], "size": o.bytes} for o in objs],
            "dead_letters": {"mode": self.config.dead_letters.mode, "total": sum(dead.values()), "consumers": [
                {"stream": s, "consumer": c, "count": n} for (s, c), n in dead.items()]},
        }
        facts: list[object] = [NatsState(
            url, version, tuple(StreamInfo(s.name, s.messages, s.bytes, s.consumers) for s in streams),
            tuple(ConsumerInfo(c.stream, c.name, c.pending, c.ack_pending, c.redelivered) for c in consumers),
            tuple((b.name[3:], k, b.bytes) for b, k in zip(kv, kv_keys, strict=True)),
            tuple((o.name[4:], o.bytes) for o in objs))]
        malformed = 0
        if jobs is not None:
            queue, counts, info = jobs
            queues.append(queue)
            details["jobs"] = info
            facts.append(RegistryJobs(counts.total, dict(counts.states)))
            malformed += counts.malformed
        if agents is not None:
            agent_samples, info, bad, registry = agents
            samples += agent_samples
            details["agents"] = info
            facts.append(registry)
            malformed += bad
        return Reading(tuple(queues), tuple(samples), latency, malformed, details, tuple(facts))

    async def close(self) -> None:
        await self._drop()
