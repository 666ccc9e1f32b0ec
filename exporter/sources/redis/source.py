"""Redis source: queues of every supported library, per tenant, in two batched round trips.

A collection is: PING (latency), tenant discovery when due (bounded SCAN), one op run for the
layouts' discovery reads, one op run for every queue of every tenant. Nothing is ever written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, NoPermissionError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from exporter.facts import Tenants as TenantIds
from exporter.model import JobPage, Reading, Sample
from exporter.sources.base import (
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
)
from exporter.sources.redis.events import CeleryEvents
from exporter.sources.redis.jobs import read_page
from exporter.sources.redis.layouts import AnyLayout
from exporter.sources.redis.layouts.base import Layout, Parsed, Plan, merge_flow
from exporter.sources.redis.ops import OpRunner
from exporter.sources.redis.script import SEP
from exporter.sources.redis.wire import Wire

log = logging.getLogger("jobqueue.redis")


def _regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"regex {value!r} does not compile: {err}") from err
    return value


class ScanTenants(Model):
    """Discover tenants by SCAN MATCH `match`; the tenant id is the regex group `tenant`."""

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
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    # pipeline: plain pipelined reads (at 10k tenants about 10 ms of Redis CPU a collection against
    # 100-150 ms for a Lua script, and no script blocking other clients); auto: read-only Lua
    # (EVALSHA_RO), falling back to pipelines where scripts are refused; lua: scripts only.
    scripts: Literal["pipeline", "auto", "lua"] = "pipeline"
    batch_size: Annotated[int, Field(ge=10, le=100000)] = 2000
    tenants: Tenants | None = None
    queues: list[AnyLayout] = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        """Checked here so that --check-config, not start-up, finds a URL the source cannot use."""
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError("url must start with redis:// or rediss:// (unix sockets are not supported)")
        db = parts.path.strip("/") or "0"
        if not db.isdigit():
            raise ValueError(f"the database in the url must be a number, got {db!r}")
        return value

    @model_validator(mode="after")
    def _secrets(self) -> RedisConfig:
        check_one_secret(self, "password")
        templated = [i for i, q in enumerate(self.queues) if q.per_tenant]
        if self.tenants is None and templated:
            raise ValueError(f"queues[{templated[0]}] uses {{tenant}} in a key but the source has no `tenants`")
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
        MetricDef("jobqueue_tenants", "Tenants the source currently reads."),
    )

    def __init__(self, config: RedisConfig, context: SourceContext, clock: Any = time.time) -> None:
        super().__init__(config, context)
        self.config: RedisConfig = config
        self.clock = clock
        self.client = Redis.from_url(
            config.url,
            username=config.username,
            password=read_secret(config.password, config.password_file),
            decode_responses=True,
            socket_connect_timeout=config.timeout,
            socket_timeout=config.timeout,
            client_name="jobqueue-exporter",
            health_check_interval=0,
            # One immediate reconnect (a pooled connection may predate a server restart); no backoff
            # and no retry on timeouts, so a dead or hung server fails fast with the right kind.
            retry=Retry(NoBackoff(), 1, (RedisConnectionError,)),
        )
        password = read_secret(config.password, config.password_file)
        self.wire = Wire(config.url, config.username, password, config.timeout)
        self.runner = OpRunner(self.client, self.wire, config.batch_size, config.scripts)
        self._tenants: list[str] = []
        self._tenants_at = -1e18
        self._memory: dict[Any, Any] = {}  # what layouts keep between collections (Parsed.memory)
        db = int(urlsplit(config.url).path.strip("/") or 0)
        self._listeners = {("events", id(layout)): listener for layout in config.queues
                           if (listener := layout.listener(db)) is not None}
        self._listening: asyncio.Task[None] | None = None

    async def collect(self) -> Reading:
        try:
            return await self._collect()
        except (RedisError, OSError) as err:
            raise failure(err) from err

    async def list_jobs(self, queue: str, state: str, limit: int, offset: int, tenant: str = "") -> JobPage | None:
        """The first layout that reads `queue` and can list jobs answers; the others are not asked."""
        layout = next((q for q in self.config.queues if q.serves(queue) and q.lists_jobs), None)
        if layout is None:
            return None
        try:
            return await read_page(self.client, layout, tenant, queue, state, limit, offset)
        except (RedisError, OSError) as err:
            raise failure(err) from err

    async def _collect(self) -> Reading:
        started = time.perf_counter()
        await self.client.ping()
        latency = time.perf_counter() - started
        tenants = await self._current_tenants()
        now = self.clock()
        if self._listeners and self._listening is None:
            self._listening = asyncio.create_task(self._listen(), name=f"redis-events-{self.name}")
        for key, listener in self._listeners.items():
            self._memory[key] = listener.freeze(now)
        groups = [(layout, tenants if layout.per_tenant else [""]) for layout in self.config.queues]
        found = await self._discover(groups)
        plans = [plan for (layout, ids), f in zip(groups, found, strict=True) for plan in layout.plan_all(ids, f, now)]
        results = await self.runner.run([op for plan in plans for op in plan.ops])
        # Parsing tens of thousands of replies is CPU work: off the event loop, so scrapes stay fast.
        return await asyncio.to_thread(self._parse, plans, results, now, latency, len(tenants))

    async def _discover(self, groups: Sequence[tuple[Layout, list[str]]]) -> list[list[list[Any]]]:
        """One op run for every layout's discovery reads; layouts without any cost nothing."""
        ops_per = [[layout.discovery(t) for t in ids] if layout.discovers else [] for layout, ids in groups]
        flat = await self.runner.run([op for per in ops_per for ops in per for op in ops])
        found: list[list[list[Any]]] = []
        pos = 0
        for (_, ids), per in zip(groups, ops_per, strict=True):
            if not per:
                found.append([[]] * len(ids))
                continue
            group = []
            for ops in per:
                group.append(flat[pos : pos + len(ops)])
                pos += len(ops)
            found.append(group)
        return found

    def _parse(self, plans: list[Plan], results: list[Any], now: float, latency: float, tenants: int) -> Reading:
        out = Parsed(memory=self._memory)
        pos = 0
        for plan in plans:
            n = len(plan.ops)
            plan.parse(results[pos : pos + n], now, out)
            pos += n
        if self.config.tenants is not None:
            out.samples.append(Sample("jobqueue_tenants", (), tenants))
            out.details["tenants"] = list(self._tenants)
            out.facts.append(TenantIds(tuple(self._tenants)))
        return Reading(tuple(out.queues), tuple(merge_flow(out.samples)), latency, out.malformed, out.details,
                       tuple(out.facts))

    async def _current_tenants(self) -> list[str]:
        spec = self.config.tenants
        if spec is None:
            return []
        if spec.static is not None:
            found = spec.static
        elif spec.source is not None:
            reading = self.context.snapshot().reading(spec.source)
            known = reading.fact(TenantIds) if reading else None
            found = self._tenants if reading is None else list(known.ids) if known else []
        elif time.monotonic() - self._tenants_at < spec.refresh:
            return self._tenants
        else:
            found = await self._scan(spec.scan) if spec.scan is not None else []  # one of the three is set
            self._tenants_at = time.monotonic()
        self._tenants = filter_tenants(found, spec, self.context.shard)
        return self._tenants

    async def _scan(self, spec: ScanTenants) -> list[str]:
        pattern = re.compile(spec.regex)
        tenants: set[str] = set()
        cursor: Any = 0
        while True:
            cursor, keys = await self.client.scan(cursor, match=spec.match, count=spec.count)
            for key in keys:
                m = pattern.search(key if isinstance(key, str) else key.decode())
                if m:
                    tenants.add(m.group("tenant"))
            if len(tenants) >= spec.cap:
                log.warning("tenant cap reached", extra={"source": self.name, "cap": spec.cap})
                return sorted(tenants)[: spec.cap]
            if int(cursor) == 0:
                return sorted(tenants)
            await asyncio.sleep(0)

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
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped

    async def close(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
        await self.wire.close()
        await self.client.aclose()


def failure(err: RedisError | OSError) -> SourceError:
    """The failure kind of a redis-py or socket error."""
    if isinstance(err, AuthenticationError | NoPermissionError):
        return SourceDenied(f"redis refused the exporter: {err}")
    if isinstance(err, RedisTimeoutError):
        return SourceTimeout(f"redis did not answer: {err}")
    if isinstance(err, RedisConnectionError | OSError):
        return SourceUnreachable(f"redis unreachable: {err}")
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
