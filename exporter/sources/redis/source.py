"""Redis source: queues of every supported library, per tenant, in two batched round trips.

A collection is: PING (latency), tenant discovery when due (bounded SCAN), one op run for the
layouts' discovery reads, one op run for every queue of every tenant. Nothing is ever written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import AuthenticationError, NoPermissionError, RedisClusterException, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from exporter.facts import Tenants as TenantIds
from exporter.model import JobPage, QueueStats, Reading, Sample
from exporter.sources.base import (
    Duration,
    MetricDef,
    Model,
    Name,
    Source,
    SourceConfig,
    SourceContext,
    SourceDenied,
    SourceError,
    SourceTimeout,
    SourceUnreachable,
    check_one_secret,
    read_secret,
    unreachable,
)
from exporter.sources.redis.cluster import ClusterWire
from exporter.sources.redis.connect import (
    SentinelConfig,
    SentinelTarget,
    client_options,
    cluster_client,
    parse_endpoint,
    sentinel_target,
)
from exporter.sources.redis.events import CeleryEvents
from exporter.sources.redis.jobs import LISTING_ENCODING, read_page
from exporter.sources.redis.layouts import AnyLayout
from exporter.sources.redis.layouts.base import Layout, Parsed, Plan, Results, merge_flow
from exporter.sources.redis.layouts.horizon import HorizonLayout
from exporter.sources.redis.layouts.laravel import LaravelLayout
from exporter.sources.redis.runner import OpRunner
from exporter.sources.redis.wire import Wire
from exporter.sources.tls import TlsConfig

log = logging.getLogger("jobqueue.redis")
SCAN_CAP = 1000  # queues a layout adds to its inventory from one key scan
SEP = "\x1f"  # never part of a tenant id (ids are joined by it in logs and older configs' scripts)
# Options of the removed Lua read path (docs/sources/redis.md, "Removed options"): still accepted, so an
# old config starts, and the source logs once that they do nothing.
REMOVED = {"scripts": "reads are always plain pipelined commands (the Lua path cost Redis ~10x the CPU for "
                      "the same values, and blocked it; bench/bench_redis.py)",
           "batch_size": "it sized the Lua script calls, which are gone"}


def _regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"regex {value!r} does not compile: {err}") from err
    return value


class ScanTenants(Model):
    """Discover tenants by SCAN MATCH `match`; the tenant id is the regex group `tenant`.

    The SCAN walks the whole keyspace (in steps of `count`); include/exclude and the shard apply to
    every id found, and only then does `cap` keep the first ids in sorted order.
    """

    match: str
    regex: str
    cap: Annotated[int, Field(ge=1)] = 10000
    count: Annotated[int, Field(ge=10, le=100000)] = 1000

    @field_validator("regex")
    @classmethod
    def _has_group(cls, value: str) -> str:
        try:
            pattern = re.compile(value)
        except re.error as err:
            raise ValueError(f"regex {value!r} does not compile: {err}") from err
        if "tenant" not in pattern.groupindex:
            raise ValueError("regex needs a named group (?P<tenant>...)")
        return value


class Tenants(Model):
    """Where tenant ids come from: a static list, a bounded SCAN, or another source's discovery."""

    static: list[str] | None = None
    scan: ScanTenants | None = None
    source: Name | None = None
    refresh: Annotated[float, Field(gt=0)] = 60.0
    include: str | None = None
    exclude: str | None = None

    _check_include = field_validator("include", "exclude")(_regex)

    @model_validator(mode="after")
    def _exactly_one(self) -> Tenants:
        given = [k for k in ("static", "scan", "source") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of static, scan, source (got {given or 'none'})")
        return self


class RedisConfig(SourceConfig):
    """A Redis (or Valkey) server and the queues to read on it."""

    type: Literal["redis"]
    url: str = "redis://127.0.0.1:6379/0"
    tls: TlsConfig | None = None  # CA, client certificate, insecure; the url's ssl_* parameters also work
    cluster: bool = False  # url names any node of a Redis Cluster; reads go to each key's node
    sentinel: SentinelConfig | None = None  # find the master (or a replica) through these sentinels
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    # removed (REMOVED): the old values are accepted and ignored, with a warning
    scripts: Literal["pipeline", "auto", "lua"] | None = None
    batch_size: Annotated[int, Field(ge=10, le=100000)] | None = None
    tenants: Tenants | None = None
    # How long a known queue or tenant whose keys are gone (drained, or no longer announced by the
    # library's registry or a live supervisor) keeps reporting depth 0 before its series are dropped.
    forget_after: Duration = 86400.0
    queues: list[AnyLayout] = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        """Checked here so that --check-config, not start-up, finds a URL the source cannot use."""
        parse_endpoint(value)
        return value

    @model_validator(mode="after")
    def _secrets(self) -> RedisConfig:
        check_one_secret(self, "password")
        endpoint = parse_endpoint(self.url, self.tls)
        if self.cluster and self.sentinel is not None:
            raise ValueError("give cluster: true or sentinel, not both")
        if self.cluster and endpoint.db:
            raise ValueError("a Redis Cluster has only database 0: drop the database from the url")
        templated = [i for i, q in enumerate(self.queues) if q.per_tenant]
        if self.tenants is None and templated:
            raise ValueError(f"queues[{templated[0]}] uses {{tenant}} in a key but the source has no `tenants`")
        for i in templated:
            if self.queues[i].tenant is not None:
                raise ValueError(f"queues[{i}] has `tenant` but its keys already take it from {{tenant}}")
        overlaps(self.queues)
        heard: dict[str, int] = {}
        for i, layout in enumerate(self.queues):
            listener = layout.listener(0)
            if listener is not None:
                if listener.prefix in heard:  # the same workers would count twice
                    raise ValueError(f"queues[{i}] listens to the Celery events that queues[{heard[listener.prefix]}] "
                                     "already hears; list all their queues in one layout")
                heard[listener.prefix] = i
        return self


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
        endpoint = parse_endpoint(config.url, config.tls, config.username,
                                  read_secret(config.password, config.password_file))
        self.client: Redis | RedisCluster
        self.wire: Wire | ClusterWire
        if config.cluster:
            self.client = cluster_client(endpoint, config.timeout)
            self.wire = ClusterWire(endpoint, config.timeout)
        elif config.sentinel is not None:
            spec = config.sentinel
            self.sentinel = sentinel_target(spec.urls, spec.master_name, spec.replica, config.timeout, config.tls)
            self.client = self.sentinel.client(config.timeout, endpoint)
            self.wire = Wire(endpoint, config.timeout, resolve=self.sentinel.address)
        else:
            self.client = Redis(**client_options(config.timeout), **endpoint.redis_py())
            self.wire = Wire(endpoint, config.timeout)
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
        self._memory: dict[Any, Any] = {}  # what layouts keep between collections (Parsed.memory)
        # A timeout cancels the await of a parse, not its thread: the next parse waits for it, so two
        # never update `_memory` (RQ's Retained counts) or the inventory at once.
        self._parsing = threading.Lock()
        db = endpoint.db
        self._listeners = {("events", id(layout)): listener for layout in config.queues
                           if (listener := layout.listener(db)) is not None}
        self._listening: asyncio.Task[None] | None = None

    async def collect(self) -> Reading:
        try:
            return await self._collect()
        except (RedisError, RedisClusterException, OSError) as err:
            raise failure(err) from err

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
        except (RedisError, RedisClusterException, OSError) as err:
            raise failure(err) from err
        finally:
            await wire.close()

    def _listing_wire(self) -> Wire | ClusterWire:
        """A lean connection of the listing's own, for one request: it holds no reply over 1 MiB (as the
        collection's), requests never share it, and it is closed after the page, which the caller's
        timeout may cut short."""
        endpoint = self.wire.seed if isinstance(self.wire, ClusterWire) else self.wire.endpoint
        if isinstance(self.wire, ClusterWire):
            return ClusterWire(endpoint, self.config.timeout, encoding=LISTING_ENCODING)
        resolve = self.sentinel.address if self.sentinel is not None else None
        return Wire(endpoint, self.config.timeout, resolve=resolve, encoding=LISTING_ENCODING)

    async def _collect(self) -> Reading:
        wire = self.wire
        if self.sentinel is not None and await self.sentinel.failover():  # a sentinel announced one
            log.info("sentinel moved the server, reconnecting", extra={"source": self.name})
            await wire.close()  # the next read asks the sentinels where to connect
        started = time.perf_counter()
        await self.client.ping()
        latency = time.perf_counter() - started
        tenants = await self._current_tenants()
        now = self.clock()
        if self._listeners and (self._listening is None or self._listening.done()):
            if self._listening is not None and not self._listening.cancelled() and self._listening.exception():
                # it ended on an error it did not expect: what was heard stays, the listener starts again
                log.error("event listener ended", exc_info=self._listening.exception(), extra={"source": self.name})
            self._listening = asyncio.create_task(self._listen(), name=f"redis-events-{self.name}")
        for key, listener in self._listeners.items():
            self._memory[key] = listener.freeze(now)
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
            cursor: Any = 0
            found = 0
            while True:
                cursor, keys = await self.client.scan(cursor, match=match, count=1000)
                for key in keys:
                    queue = layout.scanned_queue(key if isinstance(key, str) else key.decode())
                    if queue is not None and (queue in known or found < SCAN_CAP):
                        found += queue not in known
                        known[queue] = now
                if int(cursor) == 0:
                    break
                await asyncio.sleep(0)

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
        nodes = self.client.get_primaries() if isinstance(self.client, RedisCluster) else [None]
        for node in nodes:
            cursor: Any = 0
            while True:
                keys: list[Any]
                if node is None:
                    cursor, keys = await self.client.scan(cursor, match=spec.match, count=spec.count)
                else:  # a cluster client answers {node: cursor} for the one node asked
                    reply: Any = await self.client.scan(cursor, match=spec.match, count=spec.count, target_nodes=node)
                    cursors, keys = reply
                    cursor = next(iter(cursors.values()))
                for key in keys:
                    m = pattern.search(key if isinstance(key, str) else key.decode())
                    if m:
                        tenants.add(m.group("tenant"))
                if int(cursor) == 0:
                    break
                await asyncio.sleep(0)
        return sorted(tenants)

    async def _listen(self) -> None:
        """The layouts' listeners (Celery events) on one SUBSCRIBE connection, for the source's life.

        SUBSCRIBE is all it sends (the read-only ACL needs +subscribe and the topic in &channels); a
        lost connection is retried every second, and what was published meanwhile is missed.
        """
        by_channel: dict[str, list[CeleryEvents]] = {}
        for listener in self._listeners.values():
            for channel in listener.channels:
                by_channel.setdefault(channel, []).append(listener)
        lost = False
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
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
            except (RedisError, OSError) as err:
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
        await self.client.aclose()
        if self.sentinel is not None:
            await self.sentinel.close()


def overlaps(layouts: Sequence[Layout]) -> None:
    """Refuse a config in which two layouts report the same (tenant, queue): the series would be emitted
    twice (invalid OpenMetrics, doubled sums). Horizon reads Laravel's lists itself, so a Laravel layout
    on a Horizon layout's prefix is an overlap whatever the queues."""
    def scope(layout: Layout) -> str:
        return "{tenant}" if layout.per_tenant else (layout.tenant or "")

    def name(i: int) -> str:
        return f"queues[{i}] ({getattr(layouts[i], 'layout', type(layouts[i]).__name__)})"  # every layout has it

    claimed: dict[tuple[str, str], int] = {}
    for i, layout in enumerate(layouts):
        if isinstance(layout, LaravelLayout) and not isinstance(layout, HorizonLayout):
            for j, other in enumerate(layouts):
                if isinstance(other, HorizonLayout) and other.prefix == layout.prefix and scope(other) == scope(layout):
                    raise ValueError(
                        f"{name(i)} and {name(j)} both read the Laravel lists under prefix {layout.prefix!r}: "
                        "Horizon reads them itself, drop the laravel layout (list its queues in the horizon "
                        "layout's `queues` to read them without live supervisors)")
        for queue in layout.static_queues():
            first = claimed.setdefault((scope(layout), queue), i)
            if first != i:
                where = scope(layout) or '""'
                raise ValueError(
                    f"{name(first)} and {name(i)} both report queue {queue!r} (tenant {where}): give one of "
                    "them its own `tenant` label or a different queue name (docs/sources/redis.md, "
                    "Two apps in one Redis)")


def failure(err: RedisError | RedisClusterException | OSError) -> SourceError:
    """The failure kind of a redis-py or socket error."""
    if isinstance(err, AuthenticationError | NoPermissionError):
        return SourceDenied(f"redis refused the exporter: {err}")
    if isinstance(err, RedisTimeoutError):
        return SourceTimeout(f"redis did not answer: {err}")
    if isinstance(err, RedisConnectionError | OSError):
        return unreachable(f"redis unreachable: {err}", err)
    if isinstance(err, RedisClusterException) and isinstance(err.__cause__, RedisConnectionError | OSError):
        return SourceUnreachable(f"redis unreachable: {err}")  # the cluster client found no node it could reach
    return SourceError(f"redis error: {err}")


def filter_tenants(tenants: list[str], spec: Tenants, shard: tuple[int, int] = (0, 1)) -> list[str]:
    """Apply include/exclude regexes and keep this replica's shard (crc32 of the id modulo N)."""
    include = re.compile(spec.include) if spec.include else None
    exclude = re.compile(spec.exclude) if spec.exclude else None
    index, total = shard
    return [
        t for t in tenants
        if t and SEP not in t
        and (include is None or include.search(t))
        and not (exclude and exclude.search(t))
        and (total == 1 or zlib.crc32(t.encode()) % total == index)
    ]
