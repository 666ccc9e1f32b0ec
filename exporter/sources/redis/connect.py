"""Where the Redis source connects and how: one parsed endpoint for both read paths.

The source has two clients: the lean connection of `wire.py` (the big read pipelines) and redis-py
(pings, SCAN, the job listing). Both are built here from the same `Endpoint`, so a TLS
option given in the URL (`rediss://host?ssl_ca_certs=ca.crt`) or under `tls:` reaches both, and
a Sentinel or a Cluster is addressed the same way by both.

Topologies:
  single    `url` names the server.
  sentinel  `sentinel.urls` name the sentinels; they say where the master (or, with
            `replica: true`, a replica) of `sentinel.master_name` is, asked again at every reconnect.
            `url` still gives the data nodes' scheme, database, user and TLS parameters.
  cluster   `url` names any node; the slot map (CLUSTER SLOTS) says which node serves which key.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import Field, field_validator
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from exporter.sources.base import Model
from exporter.sources.tls import TlsConfig, merge

# The URL parameters understood, as redis-py names them (the same URL works with redis-py).
URL_TLS_PARAMS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
CERT_REQS = {"none": True, "optional": False, "required": False}  # -> insecure


@dataclass(frozen=True)
class Endpoint:
    """One Redis server as both clients need it."""

    host: str
    port: int
    db: int
    username: str | None
    password: str | None
    tls: TlsConfig | None  # None: plain TCP

    def redis_py(self) -> dict[str, Any]:
        """The same endpoint as redis-py connection keywords."""
        kwargs: dict[str, Any] = {"host": self.host, "port": self.port, "username": self.username,
                                  "password": self.password}
        if self.db:
            kwargs["db"] = self.db
        return {**kwargs, **tls_kwargs(self.tls)}


def tls_kwargs(tls: TlsConfig | None) -> dict[str, Any]:
    """redis-py's TLS keywords for a `tls` block (redis-py builds its own context from them)."""
    if tls is None:
        return {}
    return {"ssl": True, "ssl_ca_certs": str(tls.ca_file) if tls.ca_file else None,
            "ssl_certfile": str(tls.cert_file) if tls.cert_file else None,
            "ssl_keyfile": str(tls.key_file) if tls.key_file else None,
            "ssl_cert_reqs": "none" if tls.insecure else "required", "ssl_check_hostname": not tls.insecure}


def parse_endpoint(url: str, tls: TlsConfig | None = None, username: str | None = None,
                   password: str | None = None) -> Endpoint:
    """A `redis://` or `rediss://` URL plus the config's `tls` block; ValueError names what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("url must start with redis:// or rediss:// (unix sockets are not supported)")
    db = parts.path.strip("/") or "0"
    if not db.isdigit():
        raise ValueError(f"the database in the url must be a number, got {db!r}")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(params) - set(URL_TLS_PARAMS))
    if unknown:
        raise ValueError(f"url parameter {unknown[0]!r} is not supported (known: {', '.join(URL_TLS_PARAMS)})")
    reqs = params.get("ssl_cert_reqs")
    if reqs is not None and reqs.lower() not in CERT_REQS:
        raise ValueError(f"ssl_cert_reqs must be none, optional or required, got {reqs!r}")
    secure = parts.scheme == "rediss"
    if (params or tls is not None) and not secure:
        raise ValueError("TLS options are set but the url is redis://: use rediss://")
    if secure:
        def path(key: str) -> Path | None:
            return Path(params[key]) if key in params else None

        base = tls or TlsConfig()
        tls = TlsConfig(
            ca_file=merge("ca_file", path("ssl_ca_certs"), base.ca_file),
            cert_file=merge("cert_file", path("ssl_certfile"), base.cert_file),
            key_file=merge("key_file", path("ssl_keyfile"), base.key_file),
            insecure=bool(merge("insecure", CERT_REQS[reqs.lower()] if reqs else None,
                                base.insecure if "insecure" in base.model_fields_set else None)),
        )
    return Endpoint(parts.hostname or "127.0.0.1", parts.port or 6379, int(db),
                    username or (unquote(parts.username) if parts.username else None),
                    password or (unquote(parts.password) if parts.password else None), tls)


def client_options(timeout: float) -> dict[str, Any]:
    """redis-py options every topology shares: fail fast, no pings of its own, decoded replies."""
    return {"decode_responses": True, "socket_connect_timeout": timeout, "socket_timeout": timeout,
            "client_name": "jobqueue-exporter", "health_check_interval": 0,
            # One immediate reconnect (a pooled connection may predate a server restart); no backoff
            # and no retry on timeouts, so a dead or hung server fails fast with the right kind.
            "retry": Retry(NoBackoff(), 1, (RedisConnectionError,))}


class SentinelConfig(Model):
    """Sentinels that know where the master of `master_name` is; `replica: true` reads a replica."""

    master_name: str = Field(min_length=1)
    urls: list[str] = Field(min_length=1)  # redis://host:26379 (rediss:// with the source's `tls`)
    replica: bool = False

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            parse_endpoint(url)
        return value


Resolve = Callable[[], Awaitable[tuple[str, int]]]


@dataclass
class SentinelTarget:
    """The sentinels of one monitored master, and whether the user reads from a replica."""

    sentinel: Sentinel
    master_name: str
    replica: bool

    async def address(self) -> tuple[str, int]:
        """Where to connect now: the master, or a random replica (the master when none is up)."""
        if self.replica:
            replicas = await self.sentinel.discover_slaves(self.master_name)
            if replicas:
                host, port = random.choice(replicas)
                return str(host), int(port)
        host, port = await self.sentinel.discover_master(self.master_name)
        return str(host), int(port)

    async def still(self, address: tuple[str, int]) -> bool:
        """Whether `address` is still what the user asked for (after a failover the old master is a
        replica that keeps answering reads, so a connection to it would never break by itself)."""
        if self.replica:
            return address in {(str(h), int(p)) for h, p in await self.sentinel.discover_slaves(self.master_name)}
        host, port = await self.sentinel.discover_master(self.master_name)
        return (str(host), int(port)) == address

    def client(self, timeout: float, endpoint: Endpoint) -> Redis:
        kwargs = {**client_options(timeout), **endpoint.redis_py()}
        for key in ("host", "port"):
            kwargs.pop(key)
        if self.replica:
            return cast(Redis, self.sentinel.slave_for(self.master_name, redis_class=Redis, **kwargs))
        return cast(Redis, self.sentinel.master_for(self.master_name, redis_class=Redis, **kwargs))


def sentinel_target(urls: list[str], master_name: str, replica: bool, timeout: float,
                    tls: TlsConfig | None = None) -> SentinelTarget:
    """redis-py's Sentinel over the sentinel URLs (their user, password and TLS apply to sentinels)."""
    points = [parse_endpoint(u, tls if u.startswith("rediss") else None) for u in urls]
    first = points[0]
    sentinel_kwargs = {"socket_connect_timeout": timeout, "socket_timeout": timeout, "username": first.username,
                       "password": first.password, "decode_responses": True, **tls_kwargs(first.tls)}
    sentinel = Sentinel([(p.host, p.port) for p in points], sentinel_kwargs=sentinel_kwargs)
    return SentinelTarget(sentinel,
                          master_name, replica)


def cluster_client(endpoint: Endpoint, timeout: float) -> RedisCluster:
    """redis-py's cluster client from one seed node (the job listing and SCAN go through it)."""
    options = client_options(timeout)
    options.pop("health_check_interval")
    options.pop("retry")
    return RedisCluster(**{**options, **replace(endpoint, db=0).redis_py()})
