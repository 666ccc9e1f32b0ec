"""The exporter's own endpoints: /metrics, /healthz, /readyz (the landing page is in landing.py).

What the probes mean (Kubernetes: liveness failing restarts the pod, readiness failing takes it out
of the Service):
- /healthz (liveness): 503 once a source's collection loop has made no progress (no collection's
  result rendered on the web loop) for longer than `stall_after` of its interval and timeout
  (2 x (interval + timeout) + 10 s), or at once when the collector thread has ended. A slow or
  failing backend never fails it: each collection ends within its timeout and the loop goes on
  (`up 0`), and neither does data the renderer cannot write (that source reads `up 0`); a stopped
  loop means /metrics is frozen and only a restart brings it back.
- /readyz (readiness): 503 until every source has finished one collection, and whenever /healthz fails.
Both read two in-memory tables: no backend I/O, no lock.
"""

from __future__ import annotations

from aiohttp import web

from exporter.metrics import scrape_form
from exporter.web.keys import SCHEDULER

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Serve the exposition rendered for the current snapshot; never touches a backend."""
    exposition = request.app[SCHEDULER].exposition
    fmt, gzipped, headers = scrape_form(request.headers.get("Accept"), request.headers.get("Accept-Encoding"))
    return web.Response(body=await exposition.body_async(fmt, gzipped), headers=headers)


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Liveness: the event loop answers and every source's collection loop makes progress."""
    stalled = request.app[SCHEDULER].stalled()
    if stalled:
        return web.json_response({"status": "stalled", "stalled": stalled}, status=503)
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Readiness: every source has finished at least one collection (successful or not), and none is stalled."""
    scheduler = request.app[SCHEDULER]
    stalled = scheduler.stalled()
    if stalled:
        return web.json_response({"status": "stalled", "stalled": stalled}, status=503)
    waiting = sorted(n for n, s in scheduler.snapshot.sources.items() if s.status.collections == 0)
    if waiting:
        return web.json_response({"status": "starting", "waiting_for": waiting}, status=503)
    return web.json_response({"status": "ready"})
