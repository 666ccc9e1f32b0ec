"""What every shim module shares: the `View` its pure functions read, the `ShimDef` it declares itself
with, and the helpers of its thin aiohttp handlers (is the shim enabled, build the view, answer JSON)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from exporter import untrusted
from exporter.health.config import Shim
from exporter.health.evaluation import HealthMonitor, SystemHealth
from exporter.model import Snapshot
from exporter.web.keys import CONFIG, SCHEDULER, STARTED_AT, AppConfig

HEALTH = web.AppKey("health", HealthMonitor)
# per-app state of the shims, by key: the app is built before a shim's module may be imported (on its
# first request), and a started app's own keys are frozen, so a shim keeps what it makes here
SHIM_STATE = web.AppKey("shim_state", dict[str, Any])
S = TypeVar("S", bound=Shim)
Reply = tuple[int, Any]


@dataclass(frozen=True)
class ShimDef:
    """Everything the rest of the daemon needs to know of one shim, declared by its module as `SHIM`.

    `config` becomes the optional `shims.<key>` section; `routes` are mounted always, through the
    table's paths (a disabled shim answers 404); `paths` and `schemas` are its part of /openapi.json;
    `auth` names the security schemes its paths accept (declared in `exporter/web/openapi.py`);
    `endpoints` say what each GET path is in user words, for the landing page. State a shim keeps per
    app (a rate limiter) goes in `request.app[SHIM_STATE]`, made on its first request.
    """

    key: str
    config: type[Shim]
    routes: web.RouteTableDef
    paths: Mapping[str, Any]
    schemas: Mapping[str, Any] = field(default_factory=dict)
    auth: tuple[str, ...] = ()
    endpoints: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class View:
    """Everything a shim may read: one snapshot, its system's verdict, the config and the time."""

    snapshot: Snapshot
    health: SystemHealth | None
    monitor: HealthMonitor
    config: AppConfig
    started_at: float
    now: float


def enabled(request: web.Request, key: str, kind: type[S]) -> S:
    """The shim's config, or 404 when it is absent or disabled (its paths then do not exist)."""
    shim = request.app[CONFIG].shims.get(key)
    if not isinstance(shim, kind) or not shim.enabled:
        raise web.HTTPNotFound()
    return shim


FIRST_COLLECTION_SLACK = 1.0  # seconds beyond the slowest source's timeout
_POLL = 0.05


async def first_collection(request: web.Request, shim: Shim) -> None:
    """Wait until every source the shim reads has finished one collection, at most the slowest one's
    timeout plus a second.

    Why: in the first seconds after start (or a reload adding a source) nothing has been read yet, so an
    answer would be a 503 ("unreachable") or an `ok` about nothing, which no alert rule would agree with
    (rules page on a failed collection, never on one not yet made). Waiting briefly answers what the
    first collection found; past the bound (a dead backend) the request answers what is known."""
    scheduler, config = request.app[SCHEDULER], request.app[CONFIG]
    names = {*_sources(config, shim.system), *(name for _, name in config.shims.sources_of(shim))}

    def pending() -> list[str]:
        sources = scheduler.snapshot.sources
        return [n for n in names if (state := sources.get(n)) is not None and state.status.collections == 0]

    waiting = pending()
    if not waiting:
        return
    bound = max(((c.timeout or 0.0) if (c := config.source(n)) is not None else 0.0) for n in waiting)
    for _ in range(math.ceil((bound + FIRST_COLLECTION_SLACK) / _POLL)):  # polled: a swap notifies no one
        await asyncio.sleep(_POLL)
        if not pending():
            return


async def view(request: web.Request, shim: Shim) -> View:
    """The current snapshot and verdict (after the first collection, see above); reading them is all a
    request does."""
    await first_collection(request, shim)
    monitor = request.app[HEALTH]
    return View(request.app[SCHEDULER].snapshot, monitor.get(shim.system), monitor, request.app[CONFIG],
                request.app[STARTED_AT], time.time())


def respond(reply: Reply, headers: dict[str, str] | None = None) -> web.Response:
    status, body = reply
    return web.json_response(body, status=status, headers=headers, dumps=untrusted.dumps)  # NaN -> null


def system_sources(v: View, system: str) -> list[str]:
    """The sources a system names, each once, in config order."""
    return _sources(v.config, system)


def _sources(config: AppConfig, system: str) -> list[str]:
    found = config.system(system)
    return list(dict.fromkeys(name for _, name in (found.referenced_sources() if found else [])))
