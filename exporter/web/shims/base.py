"""What every shim module shares: the `View` its pure functions read, the `ShimDef` it declares itself
with, and the helpers of its thin aiohttp handlers (is the shim enabled, build the view, answer JSON)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from exporter import untrusted
from exporter.health.config import Shim
from exporter.health.evaluation import HealthMonitor, SystemHealth
from exporter.model import Snapshot
from exporter.web.keys import CONFIG, SCHEDULER, STARTED_AT, AppConfig

HEALTH = web.AppKey("health", HealthMonitor)
S = TypeVar("S", bound=Shim)
Reply = tuple[int, Any]


@dataclass(frozen=True)
class ShimDef:
    """Everything the rest of the daemon needs to know of one shim, declared by its module as `SHIM`.

    `config` becomes the optional `shims.<key>` section; `routes` are mounted always (a disabled shim
    answers 404); `paths` and `schemas` are its part of /openapi.json; `auth` names the security schemes
    its paths accept (declared in `exporter/web/openapi.py`); `endpoints` say what each GET path is in
    user words, for the landing page; `setup` prepares per-app state from its config.
    """

    key: str
    config: type[Shim]
    routes: web.RouteTableDef
    paths: Mapping[str, Any]
    schemas: Mapping[str, Any] = field(default_factory=dict)
    auth: tuple[str, ...] = ()
    endpoints: tuple[tuple[str, str], ...] = ()
    setup: Callable[[web.Application, Any], None] | None = None


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


def view(request: web.Request, shim: Shim) -> View:
    """The current snapshot and verdict; reading them is all a request does."""
    monitor = request.app[HEALTH]
    return View(request.app[SCHEDULER].snapshot, monitor.get(shim.system), monitor, request.app[CONFIG],
                request.app[STARTED_AT], time.time())


def respond(reply: Reply, headers: dict[str, str] | None = None) -> web.Response:
    status, body = reply
    return web.json_response(body, status=status, headers=headers, dumps=untrusted.dumps)  # NaN -> null


def system_sources(v: View, system: str) -> list[str]:
    """The sources a system names, each once, in config order."""
    config = v.config.system(system)
    out: list[str] = []
    for _, name in config.referenced_sources() if config else []:
        if name not in out:
            out.append(name)
    return out
