"""Where the Redis source connects and how: one parsed endpoint for both read paths.

The source has two clients: the lean connection of `wire.py` (every read of a single server) and
redis-py (clients.py: Sentinel, Cluster, Celery events, doctor). Both are built from the same
`Endpoint`, so a TLS
option given in the URL (`rediss://host?ssl_ca_certs=ca.crt`) or under `tls:` reaches both, and
a Sentinel or a Cluster is addressed the same way by both.

Topologies:
  single    `url` names the server.
  sentinel  `sentinel.urls` name the sentinels; they say where the master (or, with
            `replica: true`, a replica) of `sentinel.master_name` is, asked (all at once, each
            within a short bound) at every reconnect and when one announces a failover.
            `url` still gives the data nodes' scheme, database, user and TLS parameters.
  cluster   `url` names any node; the slot map (CLUSTER SLOTS) says which node serves which key.

Pure (no redis-py): the config imports it, and a single-node source never needs redis-py
(clients.py builds redis-py's clients, for Sentinel, Cluster, Celery events and doctor).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import Field, field_validator

from exporter.sources.base import Model, split_userinfo
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
    """A `redis://` or `rediss://` URL plus the config's `tls` block; ValueError names what is wrong
    and never quotes the userinfo (a password with a raw `/` is read whole, up to the last `@`)."""
    head, userinfo, tail = split_userinfo(url)
    if userinfo is None and "@" in url.partition("://")[2]:  # a Redis URL's path is a number: any `@` ends a userinfo
        head, userinfo, tail = url.partition("://")[0] + "://", *url.partition("://")[2].rpartition("@")[::2]
    user, _, secret = (userinfo or "").partition(":")
    parts = urlsplit(head + tail if userinfo is not None else url)
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
                    username or (unquote(user) if user else None), password or (unquote(secret) if secret else None),
                    tls)


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
