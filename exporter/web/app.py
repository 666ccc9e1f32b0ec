"""Builds the aiohttp application and ties the scheduler's life to the app's."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiohttp import web

from exporter.config import ExporterConfig
from exporter.health.evaluation import attach as attach_health
from exporter.scheduler import Scheduler
from exporter.web import core, landing, lifecycle, openapi
from exporter.web.auth import AUTHENTICATOR, Authenticator, RateLimiter, authenticate
from exporter.web.errors import json_errors
from exporter.web.keys import CONFIG, SCHEDULER, STARTED_AT
from exporter.web.shims import HEALTH, ops, platform, service, status, tenant
from exporter.web.webconfig import WEB_CONFIG, LiveWebConfig, web_auth


def build_app(config: ExporterConfig, scheduler: Scheduler, run_scheduler: bool = True,
              web_config: LiveWebConfig | None = None) -> web.Application:
    """The application serving /metrics, /, /healthz, /readyz (and the shims, when configured);
    `web_config` (from --web.config.file) adds basic auth and response headers."""
    app = web.Application(middlewares=[web_auth, json_errors, authenticate])
    if web_config is not None:
        app[WEB_CONFIG] = web_config
    app[CONFIG] = config
    app[SCHEDULER] = scheduler
    app[STARTED_AT] = time.time()
    app[HEALTH] = attach_health(scheduler, config.systems)
    app[AUTHENTICATOR] = Authenticator(config.auth.tokens)
    rate = config.shims.platform.rate_limit if config.shims.platform else None
    app[platform.LIMITER] = RateLimiter(rate.requests, rate.per) if rate else RateLimiter(60, 60.0)
    app.router.add_routes(core.routes)
    app.router.add_routes(landing.routes)
    app.router.add_routes(lifecycle.routes)
    app.router.add_routes(openapi.routes)
    for shim in (tenant, status, service, platform, ops):  # always mounted; a disabled shim answers 404
        app.router.add_routes(shim.routes)
    if run_scheduler:
        app.cleanup_ctx.append(_run_scheduler)
    return app


async def _run_scheduler(app: web.Application) -> AsyncIterator[None]:
    scheduler = app[SCHEDULER]
    scheduler.start()
    yield
    await scheduler.stop()
