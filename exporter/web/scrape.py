"""A scrape listener of its own (`scrape_listen`): /metrics, /healthz and /readyz on a thread and event
loop of their own, so a flood of connections on the main listener cannot delay Prometheus's scrape.

On one listener every connection is served in turn: under 2,000 busy connections a scrape waited a
whole round of them (p50 2.1 s, p99 4.9 s; issue 20 item 6). A second socket served by another
loop never queues behind the first one's connections; it shares only the GIL, which a waiting thread
gets back within the switch interval (1 ms, set in cli.py). It applies the same web config (TLS,
basic auth, headers) as the main listener and the same connection limits, takes its connections from its
own share of the process's connection budget (`limits.ConnectionBudget`, thread-safe), and serves the
exposition bytes the main loop rendered (`Exposition.body` is a cached lookup once built).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from aiohttp import web

from exporter.metrics import scrape_form
from exporter.scheduler import Scheduler
from exporter.web import core
from exporter.web.keys import SCHEDULER
from exporter.web.limits import GuardedAppRunner, GuardedSite, Limits, Share
from exporter.web.webconfig import WEB_CONFIG, LiveWebConfig, web_auth

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """The main loop's exposition bytes; built here only when no scrape has asked for this form yet."""
    exposition = request.app[SCHEDULER].exposition
    fmt, gzipped, headers = scrape_form(request.headers.get("Accept"), request.headers.get("Accept-Encoding"))
    return web.Response(body=exposition.body(fmt, gzipped), headers=headers)


routes.get("/healthz")(core.healthz)
routes.get("/readyz")(core.readyz)


class ScrapeListener:
    """The scrape paths on `host:port`, served by a daemon thread running its own event loop."""

    def __init__(self, scheduler: Scheduler, host: str, port: int, web_config: LiveWebConfig | None = None,
                 share: Share | None = None) -> None:
        self.host, self.port = host, port
        self.share = share
        self.app = web.Application(middlewares=[web_auth])
        self.app[SCHEDULER] = scheduler
        if web_config is not None:
            self.app[WEB_CONFIG] = web_config
        self.app.router.add_routes(routes)
        self.context = web_config.context if web_config is not None else None
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="jobqueue-scrape", daemon=True)
        self._runner: GuardedAppRunner | None = None

    def start(self) -> None:
        """Bind and serve; an OSError (address in use) comes back to the caller, nothing left running."""
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)
        except BaseException:
            self.stop()
            raise

    async def _start(self) -> None:
        # requests in flight get the daemon's HTTP grace (cli.HTTP_GRACE), not aiohttp's 60 s, so a stalled
        # scrape cannot push the stop past the SIGTERM bound
        self._runner = GuardedAppRunner(self.app, Limits(), self.share, access_log=None, handle_signals=False,
                                        shutdown_timeout=2.0)
        await self._runner.setup()
        await GuardedSite(self._runner, self.host, self.port, reuse_address=True, ssl_context=self.context).start()

    def stop(self) -> None:
        """Close the listener and its connections, then end the thread (bounded: 10 s)."""
        if self._thread.is_alive():
            if self._runner is not None:
                future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop)
                with contextlib.suppress(TimeoutError, OSError):
                    future.result(timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()
