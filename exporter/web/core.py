"""The exporter's own endpoints: /metrics, /, /healthz, /readyz."""

from __future__ import annotations

import html

from aiohttp import web

from exporter import __version__
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


@routes.get("/")
async def landing(request: web.Request) -> web.Response:
    """A small page naming the exporter, its endpoints and its sources."""
    snapshot = request.app[SCHEDULER].snapshot
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(s.status.backend)}</td>"
        f"<td>{'up' if s.status.up else ('waiting' if s.status.collections == 0 else 'down')}</td>"
        f"<td>{html.escape(s.status.error_kind or '')}</td></tr>"
        for name, s in sorted(snapshot.sources.items())
    )
    links = "".join(
        f'<li><a href="{path}">{path}</a> {html.escape(text)}</li>' for path, text in endpoints(request.app)
    )
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>jobqueue-exporter</title></head><body>"
        f"<h1>jobqueue-exporter {__version__}</h1><ul>{links}</ul>"
        "<h2>Sources</h2><table><tr><th>source</th><th>backend</th><th>state</th><th>last error</th></tr>"
        f"{rows}</table></body></html>"
    )
    return web.Response(text=body, content_type="text/html")


def endpoints(app: web.Application) -> list[tuple[str, str]]:
    """The GET paths the app serves, with their docstring's first line."""
    out = []
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        for route in resource:
            if route.method == "GET" and path:
                doc = (route.handler.__doc__ or "").strip().splitlines()
                out.append((path, doc[0] if doc else ""))
    return out
