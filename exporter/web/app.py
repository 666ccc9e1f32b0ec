"""Builds the aiohttp application and ties the scheduler's life to the app's."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiohttp import web

from exporter.config import ExporterConfig
from exporter.scheduler import Scheduler
from exporter.web import core
from exporter.web.errors import json_errors
from exporter.web.keys import CONFIG, SCHEDULER, STARTED_AT


def build_app(config: ExporterConfig, scheduler: Scheduler, run_scheduler: bool = True) -> web.Application:
    """The application serving /metrics, /, /healthz, /readyz (and the shims, when configured)."""
    app = web.Application(middlewares=[json_errors])
    app[CONFIG] = config
    app[SCHEDULER] = scheduler
    app[STARTED_AT] = time.time()
    app.router.add_routes(core.routes)
    if run_scheduler:
        app.cleanup_ctx.append(_run_scheduler)
    return app


async def _run_scheduler(app: web.Application) -> AsyncIterator[None]:
    scheduler = app[SCHEDULER]
    scheduler.start()
    yield
    await scheduler.stop()
