"""`POST /-/reload`, the HTTP twin of SIGHUP (Prometheus's own path), behind the web auth."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Reload = Callable[[], Awaitable[str | None]]
RELOAD: web.AppKey[Reload] = web.AppKey("reload")

routes = web.RouteTableDef()


@routes.post("/-/reload")
async def reload(request: web.Request) -> web.Response:
    """Reload the config file; the running config stays in force when the new one is bad."""
    run = request.app.get(RELOAD)
    if run is None:
        return web.json_response({"status": "error", "error": "reload is not available in this process"}, status=503)
    error = await run()
    if error:
        return web.json_response({"status": "error", "error": error}, status=500)
    return web.json_response({"status": "reloaded"})
