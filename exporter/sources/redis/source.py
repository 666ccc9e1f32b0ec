"""Redis source: queues of every supported library, per tenant, in two batched round trips.

A collection is: PING (latency), tenant discovery when due (bounded SCAN), one op run for the
layouts' discovery reads, one op run for every queue of every tenant. Nothing is ever written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exporter.facts import Tenants as TenantIds
from exporter.model import JobPage, QueueStats, Reading, Sample
from exporter.sources.base import (
    MetricDef,
    Source,
    SourceContext,
    SourceDenied,
    SourceError,
    SourceTimeout,
    SourceUnreachable,
    read_secret,
    unreachable,
)
from exporter.sources.redis.config import REMOVED, RedisConfig, ScanTenants, Tenants, overlaps
from exporter.sources.redis.connect import parse_endpoint
from exporter.sources.redis.errors import WireAuthError, WireConnectionError, WireNoPermission, failures
from exporter.sources.redis.events import CeleryEvents, Heard
from exporter.sources.redis.items import MAX_ITEM, TOO_BIG
from exporter.sources.redis.jobs import LISTING_ENCODING, read_page
from exporter.sources.redis.layouts.base import Layout, Parsed, Plan, Results, merge_flow
from exporter.sources.redis.runner import OpRunner
from exporter.sources.redis.wire import ReplyError, Wire, as_exception, pack

if TYPE_CHECKING:  # redis-py: only Sentinel, Cluster, Celery events and doctor import it (clients.py)
    from collections.abc import AsyncIterator, Sequence

    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    from exporter.sources.redis.clients import SentinelTarget
    from exporter.sources.redis.cluster import ClusterWire

__all__ = ["RedisConfig", "RedisSource", "ScanTenants", "Tenants", "failure", "filter_tenants", "overlaps"]

log = logging.getLogger("jobqueue.redis")
SCAN_CAP = 1000  # queues a layout adds to its inventory from one key scan
SKIPPED_LOG_EVERY = 300.0  # seconds between warnings about SCAN keys left out (not UTF-8, over 1 MiB)
PING = pack("PING")
_TOO_BIG = TOO_BIG.encode()  # what the lean connection hands for a key name over 1 MiB (binary)
NOT_UTF8 = ("a reply Redis sent is not UTF-8, which redis-py (Sentinel, Cluster) cannot decode "
            "(see docs/sources/redis.md, 'Key names must be UTF-8')")


@dataclass
class Skipped:
    """The keys one SCAN pass (a tenant discovery, a queue-name scan) left out. Counted per pass, so a
    warning gives one pass's total and a key is not counted again on every later pass."""

    not_utf8: int = 0
    too_big: int = 0  # key names over 1 MiB: the lean connection hands only the TOO_BIG marker
    example: bytes = b""  # one key that is not UTF-8 (its first 100 bytes)


class RedisSource(Source):
    """Reads queue layouts from one Redis server."""

    backend = "redis"
    config_model = RedisConfig
    metrics = (
        MetricDef("jobqueue_stream_group_pending", "Entries delivered to the consumer group but not acknowledged.",
                  ("tenant", "queue", "group")),
        MetricDef("jobqueue_stream_group_lag", "Entries not yet delivered to the consumer group (absent when Redis "
                  "cannot tell).", ("tenant", "queue", "group")),
        MetricDef("jobqueue_library_jobs", "Jobs the queue library keeps outside any one queue (Sidekiq retry, "
                  "dead, scheduled; Horizon failed; Celery unacked), by state.", ("tenant", "state")),
        MetricDef("jobqueue_celery_tasks", "Celery tasks finished since the exporter started listening, by task "
                  "name (beyond `task_cap` names: other) and outcome, from the workers' events.",
                  ("tenant", "task", "outcome"), type="counter"),
        MetricDef("jobqueue_celery_task_runtime_seconds", "Runtime of the Celery tasks that succeeded, summed, by "
                  "task name, from the workers' events.", ("tenant", "task"), type="counter"),
        MetricDef("jobqueue_horizon_masters", "Live Horizon masters by status.", ("tenant", "status")),
        MetricDef("jobqueue_tenants", "Tenants the source currently reads (after include/exclude, shard and cap; "
                  "known tenants stay until gone for `forget_after`)."),
        MetricDef("jobqueue_tenants_dropped", "Tenants discovery found (after include/exclude and shard) but the "
                  "`cap` left out: non-zero means some tenants are read by no replica."),
    )

    def __init__(self, config: RedisConfig, context: SourceContext, clock: Any = time.time) -> None:
        super().__init__(config, context)
        self.config: RedisConfig = config
        self.clock = clock
        self.sentinel: SentinelTarget | None = None
        self.endpoint = parse_endpoint(config.url, config.tls, config.username,
                                       read_secret(config.password, config.password_file))
        endpoint = self.endpoint
        # One server: every read (PING and SCAN too) goes through the lean connection, and redis-py's
        # client is built only when asked for (doctor): see `client`. Celery events' SUBSCRIBE has
        # a redis-py client of its own, undecoded, in every topology (`_undecoded_client`).
        self._client: Redis | RedisCluster | None = None
        self.wire: Wire | ClusterWire
        if config.cluster:
            from exporter.sources.redis.clients import cluster_client
            from exporter.sources.redis.cluster import ClusterWire

            self._client = cluster_client(endpoint, config.timeout)
            self.wire = ClusterWire(endpoint, config.timeout)
        elif config.sentinel is not None:
            from exporter.sources.redis.clients import sentinel_target

            spec = config.sentinel
            self.sentinel = sentinel_target(spec.urls, spec.master_name, spec.replica, config.timeout, config.tls)
            self._client = self.sentinel.client(config.timeout, endpoint)
            self.wire = Wire(endpoint, config.timeout, resolve=self.sentinel.address)
        else:
            self.wire = Wire(endpoint, config.timeout)
        self.plain = not config.cluster and config.sentinel is None
        self.runner = OpRunner(self.wire)
        for key, reason in REMOVED.items():
            if getattr(config, key) is not None:
                log.warning("config option removed, ignored", extra={"source": self.name, "key": key,
                                                                     "reason": f"`{key}` was removed: {reason}"})
        self._tenants: list[str] = []
        self._tenants_at = -1e18
        self._dropped = 0
        # tenant -> when discovery last found it; queue inventory: (layout index, tenant) -> queue ->
        # when it last held anything or was announced. In memory only: a restart starts from discovery.
        self._tenant_seen: dict[str, float] = {}
        self.inventory: dict[tuple[int, str], dict[str, float]] = {}
        # Which layout holds each (tenant, queue) of the last collection: the layout index of each span
        # of its records, made into a lookup only when the job listing asks (not once per collection).
        self._spans: tuple[tuple[QueueStats, ...], list[tuple[int, int, int]]] = ((), [])
        self._holders: dict[tuple[str, str], int] | None = None
        self._scanned_at = -1e18
        self._skipped_logged_at: dict[str, float] = {}  # warning -> when it was last logged
        self._memory: dict[Any, Any] = {}  # what layouts keep between collections (Parsed.memory)
        # A timeout cancels the await of a parse, not its thread: the next parse waits for it, so two
        # never update `_memory` (RQ's Retained counts) or the inventory at once.
        self._parsing = threading.Lock()
        db = endpoint.db
        self._listeners = {("events", id(layout)): listener for layout in config.queues
                           if (listener := layout.listener(db)) is not None}
        self._listening: asyncio.Task[None] | None = None
        self._listener_client: Redis | RedisCluster | None = None

    @property
    def client(self) -> Redis | RedisCluster:
        """redis-py's client of this source (Sentinel's or Cluster's; for one server, built on first use)."""
        if self._client is None:
            from exporter.sources.redis.clients import plain_client

            self._client = plain_client(self.endpoint, self.config.timeout)
        return self._client

    def _undecoded_client(self) -> Redis | RedisCluster:
        """redis-py of the Celery event listener alone (same topology, built on first use), whose
        replies stay bytes: anyone may PUBLISH on the topic, and redis-py decoding a message that is
        not UTF-8 raised out of `get_message`, which ended the listener (a traceback, and every event
        until the next collection restarted it missed). `CeleryEvents.handle` decodes and counts."""
        if self._listener_client is None:
            from exporter.sources.redis.clients import cluster_client, plain_client

            timeout = self.config.timeout
            if self.config.cluster:
                self._listener_client = cluster_client(self.endpoint, timeout, decode=False)
            elif self.sentinel is not None:
                self._listener_client = self.sentinel.client(timeout, self.endpoint, decode=False)
            else:
                self._listener_client = plain_client(self.endpoint, timeout, decode=False)
        return self._listener_client

    async def collect(self) -> Reading:
        try:
            return await self._collect()
        except failures() as err:
            raise failure(err) from err
        except UnicodeDecodeError as err:  # redis-py's decoding of a reply (Sentinel, Cluster); SCAN keys
            raise failure(err) from err  # are read undecoded and skipped (`scanned_keys`), never this

    async def list_jobs(self, queue: str, state: str, limit: int, offset: int, tenant: str = "") -> JobPage | None:
        """The layout whose series of the queue the last collection kept (the one that really holds it)
        answers; before that, the first layout that reads `queue` and can list jobs."""
        held = self.layout_of(tenant, queue)
        layout = held if held is not None and held.lists_jobs else next(
            (q for q in self.config.queues if q.serves(queue) and q.lists_jobs), None)
        if layout is None:
            return None
        wire = self._listing_wire()
        try:
            return await read_page(wire, layout, tenant, queue, state, limit, offset)
        except failures() as err:
            raise failure(err) from err
        finally:
            await wire.close()

    def _listing_wire(self) -> Wire | ClusterWire:
        """A lean connection of the listing's own, for one request: it holds no reply over 1 MiB (as the
        collection's), requests never share it, and it is closed after the page, which the caller's
        timeout may cut short."""
        if not isinstance(self.wire, Wire):
            from exporter.sources.redis.cluster import ClusterWire

            return ClusterWire(self.wire.seed, self.config.timeout, encoding=LISTING_ENCODING)
        resolve = self.sentinel.address if self.sentinel is not None else None
        return Wire(self.wire.endpoint, self.config.timeout, resolve=resolve, encoding=LISTING_ENCODING)

    async def _collect(self) -> Reading:
        wire = self.wire
        if self.sentinel is not None and await self.sentinel.failover():  # a sentinel announced one
            log.info("sentinel moved the server, reconnecting", extra={"source": self.name})
            await wire.close()  # the next read asks the sentinels where to connect
        started = time.perf_counter()
        await self._ping()
        latency = time.perf_counter() - started
        tenants = await self._current_tenants()
        now = self.clock()
        if self._listeners and (self._listening is None or self._listening.done()):
            if self._listening is not None and not self._listening.cancelled() and self._listening.exception():
                # it ended on an error it did not expect: what was heard stays, the listener starts again
                log.error("event listener ended", exc_info=self._listening.exception(), extra={"source": self.name})
            self._listening = asyncio.create_task(self._listen(), name=f"redis-events-{self.name}")
        for key, listener in self._listeners.items():
            self._memory[key] = heard = listener.freeze(now)
            self._say_malformed_events(heard)
        await self._scan_queues(now)
        groups = [(layout, tenants if layout.per_tenant else [layout.tenant or ""]) for layout in self.config.queues]
        if len(self.inventory) > len(tenants) * len(groups) + len(groups):  # tenants forgotten or dropped
            read = {(i, t) for i, (_, ids) in enumerate(groups) for t in ids}
            self.inventory = {k: v for k, v in self.inventory.items() if k in read}
        found = await self._discover(groups)
        plans: list[Plan] = []
        # per plan: the layout's index, and the inventory entry its records update (registry layouts)
        owners: list[tuple[int, str | None]] = []
        for index, ((layout, ids), f) in enumerate(zip(groups, found, strict=True)):
            if layout.registry:
                for tenant, replies in zip(ids, f, strict=True):
                    known = self.inventory.get((index, tenant), {})
                    plans.append(layout.plan_known(tenant, replies, now, sorted(known)))
                    owners.append((index, tenant))
            else:
                batch = layout.plan_all(ids, f, now)
                plans.extend(batch)
                owners.extend([(index, None)] * len(batch))
        results = await self.runner.run([op for plan in plans for op in plan.reads.values()])
        # Parsing tens of thousands of replies is CPU work: off the event loop, so scrapes stay fast.
        return await asyncio.to_thread(self._parse, plans, owners, results, now, latency, len(tenants))

    async def _ping(self) -> None:
        """PING: on one server over the lean connection, bounded by the source's timeout (as redis-py's
        socket timeout bounded it: a hung server is a timeout), tried again once on a fresh connection
        (a Redis restart since the last collection leaves a dead socket)."""
        if not self.plain:
            await self.client.ping()
            return
        for attempt in (1, 2):
            try:
                (reply,) = await asyncio.wait_for(self.wire.execute([PING]), self.config.timeout)
            except TimeoutError as err:
                raise SourceTimeout(f"redis did not answer: PING within {self.config.timeout:g}s") from err
            except WireConnectionError as err:
                if isinstance(err.__cause__, TimeoutError):
                    raise SourceTimeout(f"redis did not answer: {err}") from err
                if attempt == 2:
                    raise
                continue
            if isinstance(reply, ReplyError):
                raise as_exception(reply)
            return

    async def _scan_steps(self, match: str, count: int, skipped: Skipped) -> AsyncIterator[list[str]]:
        """The usable keys of each step of one SCAN pass, on every primary of a cluster in turn (asked
        without a node, redis-py's cluster client answers a cursor per node); the rest are counted in
        `skipped`."""
        nodes = self.client.get_primaries() if self.config.cluster else [None]  # type: ignore[union-attr]  # cluster: a RedisCluster
        for node in nodes:
            cursor = 0
            while True:
                cursor, keys = await self._scan_keys(cursor, match, count, node)
                yield scanned_keys(keys, skipped)
                if cursor == 0:
                    break
                await asyncio.sleep(0)

    async def _scan_keys(self, cursor: int, match: str, count: int, node: Any) -> tuple[int, list[bytes]]:
        """One SCAN step with its keys as bytes, on one server over the lean connection, else through
        redis-py (Sentinel, Cluster `node`), so every topology skips the same keys (`scanned_keys`)."""
        if not self.plain:
            from exporter.sources.redis.clients import scan_undecoded

            return await scan_undecoded(self.client, cursor, match, count, node)
        assert isinstance(self.wire, Wire)  # one server: the lean connection
        (reply,) = await self.wire.execute([pack("SCAN", str(cursor), "MATCH", match, "COUNT", count)],
                                           binary=True)
        if isinstance(reply, ReplyError):
            raise as_exception(reply)
        return int(reply[0]), reply[1]

    def _say_skipped(self, skipped: Skipped) -> None:
        """At the end of a SCAN pass: its total of keys left out, each kind at most every
        SKIPPED_LOG_EVERY seconds (a key stays for every pass until renamed)."""
        now = time.monotonic()
        lines: list[tuple[str, int, dict[str, str]]] = [
            ("SCAN keys not UTF-8 skipped", skipped.not_utf8, {"example": repr(skipped.example)}),
            ("SCAN keys over 1 MiB skipped", skipped.too_big, {})]
        for message, count, extra in lines:
            if count and now - self._skipped_logged_at.get(message, -1e18) >= SKIPPED_LOG_EVERY:
                log.warning(message, extra={"source": self.name, "skipped": count, **extra})
                self._skipped_logged_at[message] = now

    def _say_malformed_events(self, heard: Heard) -> None:
        """Celery event messages skipped since the last collection (counted in jobqueue_malformed_items):
        one warning at most every SKIPPED_LOG_EVERY seconds, with the first one's reason (never its
        content: task events carry the task's arguments), not one per message."""
        message = "Celery event messages malformed, skipped"
        now = time.monotonic()
        if heard.malformed and now - self._skipped_logged_at.get(message, -1e18) >= SKIPPED_LOG_EVERY:
            log.warning(message, extra={"source": self.name, "skipped": heard.malformed, "reason": heard.why})
            self._skipped_logged_at[message] = now

    async def _discover(self, groups: Sequence[tuple[Layout, list[str]]]) -> list[list[Results]]:
        """One op run for every layout's discovery reads, each tenant's results by name; layouts without
        any cost nothing."""
        per_layout = [[layout.discovery(t) for t in ids] if layout.discovers else [] for layout, ids in groups]
        flat = iter(await self.runner.run([op for per in per_layout for reads in per for op in reads.values()]))
        nothing: Results = {}
        return [[{name: next(flat) for name in reads} for reads in per] if per else [nothing] * len(ids)
                for (_, ids), per in zip(groups, per_layout, strict=True)]

    def _parse(self, plans: list[Plan], owners: list[tuple[int, str | None]], results: list[Any], now: float,
               latency: float, tenants: int) -> Reading:
        with self._parsing:
            return self._parse_locked(plans, owners, results, now, latency, tenants)

    def _parse_locked(self, plans: list[Plan], owners: list[tuple[int, str | None]], results: list[Any],
                      now: float, latency: float, tenants: int) -> Reading:
        out = Parsed(memory=self._memory)
        pos = 0
        spans: list[tuple[int, int, int]] = []
        for plan, (index, tenant) in zip(plans, owners, strict=True):
            n = len(plan.reads)
            first = len(out.queues)
            plan.parse(dict(zip(plan.reads, results[pos : pos + n], strict=True)), now, out)
            pos += n
            spans.append((index, first, len(out.queues)))
            if tenant is not None:
                self._remember((index, tenant), out.queues[first:], now)
        if self.config.tenants is not None:
            out.samples.append(Sample("jobqueue_tenants", (), tenants))
            out.samples.append(Sample("jobqueue_tenants_dropped", (), self._dropped))  # 0 without a cap
            out.details["tenants"] = list(self._tenants)
            out.facts.append(TenantIds(tuple(self._tenants)))
        queues = tuple(out.queues)
        self._spans, self._holders = (queues, spans), None
        return Reading(queues, tuple(merge_flow(out.samples)), latency, out.malformed, out.details,
                       tuple(out.facts))

    def layout_of(self, tenant: str, queue: str) -> Layout | None:
        """The layout whose record of (tenant, queue) the last collection kept: the one that really holds
        the queue (a registry layout claims every name in the config, not every name in Redis)."""
        holders = self._holders
        if holders is None:
            built = self._spans
            queues, spans = built
            holders = {}
            for holder, first, end in spans:
                for q in queues[first:end]:
                    holders.setdefault((q.tenant, q.queue), holder)
            if self._spans is built:  # a parse thread may have handed over a newer map meanwhile
                self._holders = holders
        index = holders.get((tenant, queue))
        return None if index is None else self.config.queues[index]

    def _remember(self, owner: tuple[int, str], records: list[QueueStats], now: float) -> None:
        """Queue inventory of a layout whose queues come from the library's registry (or live
        supervisors): a queue stays planned while it holds anything or is announced, and for
        `forget_after` after that, so a drained queue or a dead announcer never hides it."""
        known = self.inventory.setdefault(owner, {})
        before = set(known)
        for q in records:
            if q.queue not in before or q.depth or q.oldest_timestamp is not None or any(n for _, n in q.states):
                known[q.queue] = now
            elif now - known[q.queue] >= self.config.forget_after:
                del known[q.queue]  # read (and reported) this once more; announced again, it comes back
        if not known:
            del self.inventory[owner]

    async def _scan_queues(self, now: float) -> None:
        """Queues no registry lists (Laravel's lists under a Horizon without live supervisors, BullMQ
        queues not named in the config) found by a bounded SCAN of their keys, every `tenants.refresh`
        (60 s without tenants), into the inventory: a backlog is found even after a restart while
        Horizon is down."""
        refresh = self.config.tenants.refresh if self.config.tenants is not None else 60.0
        if time.monotonic() - self._scanned_at < refresh:
            return
        self._scanned_at = time.monotonic()
        for index, layout in enumerate(self.config.queues):
            match = layout.scan_match() if layout.registry else None
            if match is None:
                continue
            known = self.inventory.setdefault((index, layout.tenant or ""), {})
            found = 0
            skipped = Skipped()
            async for keys in self._scan_steps(match, 1000, skipped):
                for key in keys:
                    queue = layout.scanned_queue(key)
                    if queue is not None and (queue in known or found < SCAN_CAP):
                        found += queue not in known
                        known[queue] = now
            self._say_skipped(skipped)

    async def _current_tenants(self) -> list[str]:
        spec = self.config.tenants
        if spec is None:
            return []
        if spec.static is not None:
            self._tenants = filter_tenants(spec.static, spec, self.context.shard)
            return self._tenants
        if spec.source is not None:
            reading = self.context.snapshot().reading(spec.source)
            if reading is not None:
                known = reading.fact(TenantIds)
                self._known(list(known.ids) if known else [], spec)
        elif time.monotonic() - self._tenants_at >= spec.refresh:
            self._known(await self._scan(spec.scan) if spec.scan is not None else [], spec)  # one of three is set
            self._tenants_at = time.monotonic()
        return self._tenants

    def _known(self, found: list[str], spec: Tenants) -> None:
        """Found tenants plus those found within `forget_after` (a drained tenant's keys are gone, but
        the tenant is not), filtered and sharded, then capped to the first ids in sorted order."""
        now = self.clock()
        for tenant in found:
            self._tenant_seen[tenant] = now
        for tenant, seen in list(self._tenant_seen.items()):
            if now - seen >= self.config.forget_after:
                del self._tenant_seen[tenant]
        kept = sorted(filter_tenants(list(self._tenant_seen), spec, self.context.shard))
        cap = spec.scan.cap if spec.scan is not None else len(kept)
        self._dropped = max(0, len(kept) - cap)
        if self._dropped:
            log.warning("tenant cap reached", extra={"source": self.name, "cap": cap, "dropped": self._dropped})
        self._tenants = kept[:cap]

    async def _scan(self, spec: ScanTenants) -> list[str]:
        """Every tenant id whose keys match, on every primary of a cluster; the cap applies after filtering
        (see `_known`)."""
        pattern = re.compile(spec.regex)
        tenants: set[str] = set()
        skipped = Skipped()
        async for keys in self._scan_steps(spec.match, spec.count, skipped):
            for key in keys:
                m = pattern.search(key)
                if m:
                    tenants.add(m.group("tenant"))
        self._say_skipped(skipped)
        return sorted(tenants)

    async def _listen(self) -> None:
        """The layouts' listeners (Celery events) on one SUBSCRIBE connection, for the source's life.

        SUBSCRIBE is all it sends (the read-only ACL needs +subscribe and the topic in &channels); a
        lost connection is retried every second, and what was published meanwhile is missed.
        """
        by_channel: dict[bytes, list[CeleryEvents]] = {}
        for listener in self._listeners.values():
            for channel in listener.channels:
                by_channel.setdefault(channel.encode(), []).append(listener)
        lost = False
        while True:
            pubsub = self._undecoded_client().pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*by_channel)
                lost = False
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        for listener in by_channel.get(message["channel"], ()):
                            listener.handle(message["data"], self.clock())
            except asyncio.CancelledError:
                raise
            except failures() as err:
                if not lost:  # once per outage, not once a second
                    log.warning("event listener lost its connection", extra={"source": self.name, "error": str(err)})
                lost = True
                await asyncio.sleep(1.0)
            finally:
                await pubsub.aclose()

    async def close(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
        await self.wire.close()
        if self._client is not None:
            await self._client.aclose()
        if self._listener_client is not None:
            await self._listener_client.aclose()
        if self.sentinel is not None:
            await self.sentinel.close()


def failure(err: BaseException) -> SourceError:
    """The failure kind of an error of the lean connection, of redis-py (once loaded), of a socket, or of
    redis-py's decoding of a reply that is not UTF-8."""
    redis = sys.modules.get("redis.exceptions")
    if isinstance(err, WireAuthError | WireNoPermission) or (
            redis is not None and isinstance(err, redis.AuthenticationError | redis.NoPermissionError)):
        return SourceDenied(f"redis refused the exporter: {err}")
    if redis is not None and isinstance(err, redis.TimeoutError):
        return SourceTimeout(f"redis did not answer: {err}")
    if isinstance(err, OSError) or (redis is not None and isinstance(err, redis.ConnectionError)):
        return unreachable(f"redis unreachable: {err}", err)
    if (redis is not None and isinstance(err, redis.RedisClusterException)
            and isinstance(err.__cause__, redis.ConnectionError | OSError)):
        return SourceUnreachable(f"redis unreachable: {err}")  # the cluster client found no node it could reach
    if isinstance(err, UnicodeDecodeError):  # redis-py decodes replies (decode_responses): a kind that
        return SourceError(f"redis error: {NOT_UTF8} ({err})")  # logs once, not a crash each cycle
    return SourceError(f"redis error: {err}")


def scanned_keys(raw: list[bytes], skipped: Skipped) -> list[str]:
    """The key names of a SCAN reply (bytes, from any topology) that can name a tenant or a queue; the
    rest are counted in `skipped`: not UTF-8 (a label value is UTF-8; decoded with replacement it was a
    garbled tenant whose reads found nothing), or over 1 MiB (the lean connection hands only the TOO_BIG
    marker, whose text a loose regex made a tenant; redis-py hands the whole name)."""
    keys: list[str] = []
    for key in raw:
        if key == _TOO_BIG or len(key) > MAX_ITEM:
            skipped.too_big += 1
            continue
        try:
            keys.append(key.decode())
        except UnicodeDecodeError:
            skipped.not_utf8 += 1
            skipped.example = skipped.example or key[:100]
    return keys


def filter_tenants(tenants: list[str], spec: Tenants, shard: tuple[int, int] = (0, 1)) -> list[str]:
    """Apply include/exclude regexes and keep this replica's shard (crc32 of the id modulo N)."""
    include = re.compile(spec.include) if spec.include else None
    exclude = re.compile(spec.exclude) if spec.exclude else None
    index, total = shard
    return [
        t for t in tenants
        if t
        and (include is None or include.search(t))
        and not (exclude and exclude.search(t))
        and (total == 1 or zlib.crc32(t.encode()) % total == index)
    ]
