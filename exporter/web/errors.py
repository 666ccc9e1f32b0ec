"""aiohttp's own HTTP errors (404, 405, ...) answered as JSON `{"error": reason}` instead of plain text."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's plain-text HTTP errors (404, 405, ...) into JSON."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return web.json_response({"error": exc.reason.lower().replace(" ", "_")}, status=exc.status,
                                 headers=headers)
