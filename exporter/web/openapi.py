"""The OpenAPI 3.1 document of every path the web layer serves, served at /openapi.json: the exporter's own
paths here, each shim's paths and schemas from its `SHIM` in the shim table (`exporter/web/shims/`).

`exporter/web/openapi.json` is the checked-in rendering (`python -m exporter.web.openapi`); a test
keeps the two equal, validates every shim answer against it and runs schemathesis on the live app.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from aiohttp import web

from exporter import __version__
from exporter.web.schema import STR, answer, get_op, obj
from exporter.web.shims import SHIMS

routes = web.RouteTableDef()
SCHEMAS: dict[str, Any] = {
    "Error": obj({"error": STR}),
}
STALLED = obj({"status": {"const": "stalled"}, "stalled": {"type": "array", "items": STR}})
PATHS: dict[str, Any] = {
    "/metrics": get_op("Prometheus exposition of the current snapshot.", {"200": {
        "description": "Text format or OpenMetrics by Accept.",
        "content": {"text/plain": {"schema": STR}, "application/openmetrics-text": {"schema": STR}}}}, "exporter"),
    "/": get_op("Landing page.", {"200": answer("HTML.", STR, "text/html")}, "exporter"),
    "/healthz": get_op("Liveness: every source's collection loop makes progress.", {
        "200": answer("Alive.", obj({"status": {"const": "ok"}})),
        "503": answer("Stalled: a collection loop made no progress within its bound.", STALLED)}, "exporter"),
    "/readyz": get_op("Readiness: every source collected once, and none stalled.", {
        "200": answer("Ready.", obj({"status": {"const": "ready"}})),
        "503": answer("Starting, or stalled.", {"oneOf": [
            obj({"status": {"const": "starting"}, "waiting_for": {"type": "array", "items": STR}}),
            STALLED]})}, "exporter"),
    "/openapi.json": get_op("This document.", {"200": answer("OpenAPI 3.1.", {"type": "object"})}, "exporter"),
    "/-/reload": {"post": {
        "summary": "Reload the config file (like SIGHUP); a bad new config keeps the running one.",
        "tags": ["exporter"], "security": [],
        "responses": {
            "200": answer("Reloaded.", obj({"status": {"const": "reloaded"}})),
            "401": {"description": "Basic auth required (when the web config sets users)."},
            "500": answer("The new config is invalid; the running one stays.", obj({
                "status": {"const": "error"}, "error": STR})),
            "503": answer("This process cannot reload.", obj({"status": {"const": "error"}, "error": STR}))}}},
}
SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {"type": "http", "scheme": "bearer"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "opsToken": {"type": "apiKey", "in": "header", "name": "x-ops-token"},
}


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    paths, schemas = dict(PATHS), dict(SCHEMAS)
    for entry in SHIMS:  # every shim's module: the document is asked for rarely
        shim = entry.load()
        paths.update(shim.paths)
        schemas.update(shim.schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "jobqueue-exporter", "version": __version__,
                 "description": "Prometheus exporter endpoints and the JSON health APIs it can serve."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }


def rendered() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


@routes.get("/openapi.json")
async def get_openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of every path served here."""
    return web.json_response(document())


if __name__ == "__main__":
    sys.stdout.write(rendered())
