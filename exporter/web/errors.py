"""Every JSON error response is built here, so bad requests always get the same shape."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    """A JSON 4xx/5xx body: {"error": message, ...}."""
    return web.json_response({"error": message, **extra}, status=status)


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
