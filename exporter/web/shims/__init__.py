"""The JSON shims of `shared/seeds/`: one module per seed, each a pure function from a `View`
(snapshot, the bound system's health, config, clock) and request parameters to (status, body),
plus thin aiohttp handlers that check the shim is enabled and authenticate the caller.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from exporter import untrusted
from exporter.config import ExporterConfig
from exporter.health.config import Shim
from exporter.health.evaluation import HealthMonitor, SystemHealth
from exporter.model import Snapshot
from exporter.web.keys import CONFIG, SCHEDULER, STARTED_AT

HEALTH = web.AppKey("health", HealthMonitor)
S = TypeVar("S", bound=Shim)
Reply = tuple[int, Any]


@dataclass(frozen=True)
class View:
    """Everything a shim may read: one snapshot, its system's verdict, the config and the time."""

    snapshot: Snapshot
    health: SystemHealth | None
    monitor: HealthMonitor
    config: ExporterConfig
    started_at: float
    now: float


def enabled(request: web.Request, key: str, kind: type[S]) -> S:
    """The shim's config, or 404 when it is absent or disabled (its paths then do not exist)."""
    shim = getattr(request.app[CONFIG].shims, key)
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
