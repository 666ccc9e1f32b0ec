"""Builds the aiohttp application and ties the scheduler's life to the app's."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiohttp import web

from exporter.health.evaluation import monitor_of
from exporter.scheduler import Scheduler
from exporter.web import core, landing, lifecycle, openapi
from exporter.web.auth import AUTHENTICATOR, Authenticator, authenticate
from exporter.web.errors import json_errors
from exporter.web.keys import CONFIG, LIMITS, SCHEDULER, STARTED_AT, AppConfig
from exporter.web.limits import Limits, shed
from exporter.web.shims import SHIMS, Handler, ShimRef
from exporter.web.shims.base import HEALTH, SHIM_STATE
from exporter.web.webconfig import WEB_CONFIG, LiveWebConfig, web_auth


def build_app(config: AppConfig, scheduler: Scheduler, run_scheduler: bool = True,
              web_config: LiveWebConfig | None = None) -> web.Application:
    """The application serving /metrics, /, /healthz, /readyz (and the shims, when configured);
    `web_config` (from --web.config.file) adds basic auth and response headers."""
    limits = Limits()
    # shedding first: an overloaded server refuses before it spends a bcrypt check on the request
    app = web.Application(middlewares=[shed(limits), web_auth, json_errors, authenticate])
    if web_config is not None:
        app[WEB_CONFIG] = web_config
    app[LIMITS] = limits
    app[CONFIG] = config
    app[SCHEDULER] = scheduler
    app[STARTED_AT] = time.time()
    app[HEALTH] = monitor_of(scheduler)
    app[AUTHENTICATOR] = Authenticator(config.auth.tokens)
    app.router.add_routes(core.routes)
    app.router.add_routes(landing.routes)
    app.router.add_routes(lifecycle.routes)
    app.router.add_routes(openapi.routes)
    app[SHIM_STATE] = {}
    for shim in SHIMS:  # always mounted (a disabled shim answers 404); its module imported on first use
        for path in shim.paths:
            app.router.add_get(path, _deferred(shim, path))
    if run_scheduler:
        app.cleanup_ctx.append(_run_scheduler)
    return app


def _deferred(shim: ShimRef, path: str) -> Handler:
    """The shim's handler of `path`, found per request; a shim the config does not name answers 404
    here, as its own handler would, so a client probing its paths never imports its module."""
    async def handle(request: web.Request) -> web.StreamResponse:
        if request.app[CONFIG].shims.get(shim.key) is None:
            raise web.HTTPNotFound()
        return await shim.handler(path)(request)

    return handle


async def _run_scheduler(app: web.Application) -> AsyncIterator[None]:
    scheduler = app[SCHEDULER]
    scheduler.start(threaded=True)  # collection on a loop of its own: busy HTTP never times a source out
    yield
    await scheduler.stop()


def build_probe_app(scheduler: Scheduler) -> web.Application:
    """Only /healthz and /readyz, for `--health-listen`: a plain-HTTP port the kubelet and the
    container HEALTHCHECK reach whatever the web config demands of the main one (TLS, a client
    certificate). Nothing else is served there, so no metric or health API bypasses that policy."""
    app = web.Application()
    app[SCHEDULER] = scheduler
    app.router.add_get("/healthz", core.healthz)
    app.router.add_get("/readyz", core.readyz)
    return app
