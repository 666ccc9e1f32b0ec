"""redis-py's clients of the Redis source, for the paths that need one: Sentinel (asking the sentinels
and watching for failovers), Cluster (SCAN on every primary), the Celery event listener's SUBSCRIBE,
and doctor. A single-node collection reads through the lean connection of `wire.py` alone, so this
module (and redis-py, ~6 MB of RSS on top of exporter.cli) is imported only when one of those is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.client import NEVER_DECODE
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from exporter.sources.redis.connect import Endpoint, parse_endpoint, tls_kwargs
from exporter.sources.tls import TlsConfig


def client_options(timeout: float, decode: bool = True) -> dict[str, Any]:
    """redis-py options every topology shares: fail fast, no pings of its own, decoded replies (bytes
    for the Celery event listener, `decode=False`: a message anyone may PUBLISH need not be UTF-8)."""
    return {"decode_responses": decode, "socket_connect_timeout": timeout, "socket_timeout": timeout,
            "client_name": "jobqueue-exporter", "health_check_interval": 0,
            # One immediate reconnect (a pooled connection may predate a server restart); no backoff
            # and no retry on timeouts, so a dead or hung server fails fast with the right kind.
            "retry": Retry(NoBackoff(), 1, (RedisConnectionError,))}


T = TypeVar("T")
SENTINEL_BOUND = 1.0  # seconds one sentinel may take to answer; a sentinel answers from memory in a millisecond
RESUBSCRIBE = 5.0  # seconds between attempts to watch a sentinel that is down or hung


def plain_client(endpoint: Endpoint, timeout: float, decode: bool = True) -> Redis:
    """redis-py for one server (a single-node source's SUBSCRIBE, and doctor's questions)."""
    return Redis(**client_options(timeout, decode), **endpoint.redis_py())


class SentinelTarget:
    """The sentinels of one monitored master, asked only when they are needed and all at once.

    A healthy master is never held up by a sentinel: the sentinels are asked where to connect only
    when a connection is (re)made, that is when the data connection failed, or when a sentinel
    announced a failover (`+switch-master`, watched on every sentinel); each is asked concurrently
    within a short bound of its own, and the first valid answer wins. redis-py's `Sentinel` asked
    them in list order with the source's whole timeout each, and the source asked them at every
    collection: one hung sentinel (`kill -STOP`) kept a healthy master `up 0` (issue 20 item 1).
    Each sentinel URL's own user, password and TLS apply to it.
    """

    def __init__(self, sentinels: list[Redis], master_name: str, replica: bool, bound: float) -> None:
        self.sentinels = sentinels
        self.master_name = master_name
        self.replica = replica
        self.bound = bound
        self.moved = False  # a failover was announced since the last `take_moved`
        self._watchers: list[asyncio.Task[None]] = []
        self._subscribed: list[asyncio.Event] = []
        self._pools: list[SentinelConnectionPool] = []

    async def _first(self, ask: Callable[[Redis], Awaitable[T | None]]) -> T | None:
        """The first useful answer of any sentinel, each bounded; None when none has one."""
        self.watch()
        tasks = [asyncio.ensure_future(asyncio.wait_for(ask(s), self.bound)) for s in self.sentinels]
        try:
            for done in asyncio.as_completed(tasks):
                try:
                    answer = await done
                except (RedisError, OSError, TimeoutError):
                    continue
                if answer is not None:
                    return answer
            return None
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        """Where the master is (redis-py's SentinelConnectionPool calls this on each new connection)."""
        async def ask(sentinel: Redis) -> tuple[str, int] | None:
            masters = await sentinel.sentinel_masters()
            state = masters.get(service_name) if isinstance(masters, dict) else None
            if not state or not state["is_master"] or state["is_sdown"] or state["is_odown"]:
                return None
            return str(state["ip"]), int(state["port"])

        found = await self._first(ask)
        if found is None:
            raise MasterNotFoundError(f"no sentinel of {len(self.sentinels)} knew a master {service_name!r} "
                                      f"within {self.bound:g}s")
        return found

    async def discover_slaves(self, service_name: str) -> list[tuple[str, int]]:
        """The replicas that are up, from the first sentinel that lists any."""
        async def ask(sentinel: Redis) -> list[tuple[str, int]] | None:
            alive = [(str(r["ip"]), int(r["port"])) for r in await sentinel.sentinel_slaves(service_name)
                     if not r["is_sdown"] and not r["is_odown"]]
            return alive or None

        return await self._first(ask) or []

    async def address(self) -> tuple[str, int]:
        """Where to connect now: the master, or a random replica (the master when none is up). Within
        the same bound, the watches are given time to subscribe, so no failover after this goes unheard."""
        started = time.monotonic()
        found: tuple[str, int] | None = None
        if self.replica:
            replicas = await self.discover_slaves(self.master_name)
            if replicas:
                found = random.choice(replicas)
        found = found or await self.discover_master(self.master_name)
        waits = [asyncio.ensure_future(e.wait()) for e in self._subscribed if not e.is_set()]
        if waits:
            await asyncio.wait(waits, timeout=max(0.0, self.bound - (time.monotonic() - started)))
            for wait in waits:
                wait.cancel()
        return found

    async def failover(self) -> bool:
        """Whether a failover was announced since the last call; then redis-py's pooled connections are
        dropped (the caller drops its own), so the next command asks the sentinels where to go."""
        moved, self.moved = self.moved, False
        if moved:
            await asyncio.gather(*(pool.disconnect() for pool in self._pools))
        return moved

    def watch(self) -> None:
        """Subscribe to `+switch-master` on every sentinel (once; on the running loop)."""
        if not self._watchers:
            self._subscribed = [asyncio.Event() for _ in self.sentinels]
            self._watchers = [asyncio.create_task(self._watch(s, e), name=f"sentinel-watch-{i}")
                              for i, (s, e) in enumerate(zip(self.sentinels, self._subscribed, strict=True))]

    async def _watch(self, sentinel: Redis, subscribed: asyncio.Event) -> None:
        while True:
            pubsub = sentinel.pubsub()
            try:
                await asyncio.wait_for(pubsub.subscribe("+switch-master"), self.bound)
                subscribed.set()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=RESUBSCRIBE)
                    if message is not None and str(message["data"]).split(" ", 1)[0] == self.master_name:
                        self.moved = True
            except (RedisError, OSError, TimeoutError):
                subscribed.clear()
                await asyncio.sleep(RESUBSCRIBE)  # down or hung: asked again later, never waited for
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    def client(self, timeout: float, endpoint: Endpoint, decode: bool = True) -> Redis:
        """redis-py over a SentinelConnectionPool that asks these sentinels (not redis-py's Sentinel)."""
        kwargs = {**client_options(timeout, decode), **endpoint.redis_py()}
        for key in ("host", "port"):
            kwargs.pop(key)
        pool = SentinelConnectionPool(self.master_name, self, is_master=not self.replica, **kwargs)  # type: ignore[no-untyped-call]  # redis-py: untyped
        self._pools.append(pool)
        return Redis.from_pool(pool)

    async def close(self) -> None:
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers = []
        await asyncio.gather(*(s.aclose() for s in self.sentinels), return_exceptions=True)


def sentinel_target(urls: list[str], master_name: str, replica: bool, timeout: float,
                    tls: TlsConfig | None = None) -> SentinelTarget:
    """One client per sentinel URL, with that URL's user, password and TLS (rediss:// takes the
    source's `tls`), and a bound of its own well inside the source's timeout."""
    bound = min(SENTINEL_BOUND, timeout / 3)
    clients = []
    for url in urls:
        point = parse_endpoint(url, tls if url.startswith("rediss") else None)
        clients.append(Redis(host=point.host, port=point.port, username=point.username, password=point.password,
                             socket_connect_timeout=bound, socket_timeout=bound, decode_responses=True,
                             retry=Retry(NoBackoff(), 0), **tls_kwargs(point.tls)))
    return SentinelTarget(clients, master_name, replica, bound)


async def scan_undecoded(client: Redis | RedisCluster, cursor: int, match: str, count: int,
                         node: Any = None) -> tuple[int, list[bytes]]:
    """One SCAN step whose keys stay bytes: redis-py's per-command NEVER_DECODE reads this reply
    undecoded whatever `decode_responses` says (redis/asyncio/client.py and cluster.py
    `parse_response`), so a key that is not UTF-8 is the caller's to skip, not a UnicodeDecodeError
    that fails the whole collection. On a cluster `node` is the one primary asked."""
    options: dict[str, Any] = {NEVER_DECODE: True}
    if node is not None:
        options["target_nodes"] = node
    reply: Any = await client.scan(cursor, match=match, count=count, **options)
    found, keys = reply  # a cluster client answers {node name: cursor} for the one node asked
    return int(next(iter(found.values())) if isinstance(found, dict) else found), list(keys)


def cluster_client(endpoint: Endpoint, timeout: float, decode: bool = True) -> RedisCluster:
    """redis-py's cluster client from one seed node (the job listing and SCAN go through it)."""
    options = client_options(timeout, decode)
    options.pop("health_check_interval")
    options.pop("retry")
    return RedisCluster(**{**options, **replace(endpoint, db=0).redis_py()})
