"""The Redis source's config: what `type: redis` accepts and checks (no client is imported here).

Kept apart from source.py so that loading a config never imports the source's clients (hiredis; and
redis-py, which only Sentinel, Cluster and Celery events use).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from exporter.sources.base import Duration, Model, Name, SourceConfig, check_one_secret
from exporter.sources.redis.connect import SentinelConfig, parse_endpoint
from exporter.sources.redis.layouts import AnyLayout
from exporter.sources.redis.layouts.base import Layout
from exporter.sources.tls import TlsConfig

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


def overlaps(layouts: Sequence[Layout]) -> None:
    """Refuse a config in which two layouts report the same (tenant, queue): the series would be emitted
    twice (invalid OpenMetrics, doubled sums). Horizon reads Laravel's lists itself, so a Laravel layout
    on a Horizon layout's prefix is an overlap whatever the queues."""
    def scope(layout: Layout) -> str:
        return "{tenant}" if layout.per_tenant else (layout.tenant or "")

    def tag(layout: Layout) -> str:  # every layout has it; by tag, so no layout module is imported here
        return str(getattr(layout, "layout", type(layout).__name__))

    def name(i: int) -> str:
        return f"queues[{i}] ({tag(layouts[i])})"

    claimed: dict[tuple[str, str], int] = {}
    for i, layout in enumerate(layouts):
        if tag(layout) == "laravel":
            prefix = getattr(layout, "prefix", None)  # Laravel's and Horizon's own field
            for j, other in enumerate(layouts):
                same = getattr(other, "prefix", None) == prefix and scope(other) == scope(layout)
                if tag(other) == "horizon" and same:
                    raise ValueError(
                        f"{name(i)} and {name(j)} both read the Laravel lists under prefix {prefix!r}: "
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
