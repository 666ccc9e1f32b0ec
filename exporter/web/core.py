"""The exporter's own endpoints: /metrics, /healthz, /readyz (the landing page is in landing.py)."""

from __future__ import annotations

from aiohttp import web

from exporter.metrics import CONTENT_TYPES, accepts_gzip, choose_format
from exporter.web.keys import SCHEDULER

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Serve the exposition rendered for the current snapshot; never touches a backend."""
    exposition = request.app[SCHEDULER].exposition
    fmt = choose_format(request.headers.get("Accept"))
    gzipped = accepts_gzip(request.headers.get("Accept-Encoding"))
    body = await exposition.body_async(fmt, gzipped)
    headers = {"Content-Type": CONTENT_TYPES[fmt], "Vary": "Accept, Accept-Encoding"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers)


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process and its event loop answer. Backends play no part."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Readiness: every source has finished at least one collection (successful or not)."""
    snapshot = request.app[SCHEDULER].snapshot
    waiting = sorted(n for n, s in snapshot.sources.items() if s.status.collections == 0)
    if waiting:
        return web.json_response({"status": "starting", "waiting_for": waiting}, status=503)
    return web.json_response({"status": "ready"})
