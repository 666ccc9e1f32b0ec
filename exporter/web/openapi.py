"""The OpenAPI 3.1 document of every path the web layer serves, built here and served at /openapi.json.

`exporter/web/openapi.json` is the checked-in rendering (`python -m exporter.web.openapi`); a test
keeps the two equal, validates every shim answer against it and runs schemathesis on the live app.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from aiohttp import web

from exporter import __version__

routes = web.RouteTableDef()
JSON = "application/json"


def nullable(kind: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(kind, dict):
        return {"anyOf": [kind, {"type": "null"}]}
    return {"type": [kind, "null"]}


def obj(props: dict[str, Any], required: list[str] | None = None, extra: bool = False) -> dict[str, Any]:
    """An object schema; every listed property is required unless `required` says otherwise."""
    return {"type": "object", "properties": props, "required": list(props) if required is None else required,
            "additionalProperties": extra}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def answer(description: str, schema: dict[str, Any] | None = None, media: str = JSON) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {media: {"schema": schema}}
    return out


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


INT, NUM, STR, BOOL = {"type": "integer"}, {"type": "number"}, {"type": "string"}, {"type": "boolean"}
ANY: dict[str, Any] = {}
NOT_FOUND = answer("Unknown path, or the shim is disabled or not configured.", ref("Error"))
STATE3 = {"type": "string", "enum": ["ok", "degraded", "unhealthy"]}

SCHEMAS: dict[str, Any] = {
    "Error": obj({"error": STR}),
    "LaravelMessage": obj({"message": STR}),
    "StatusError": obj({"error": STR, "details": STR, "code": INT}),
    "EnvelopeError": obj({"success": {"const": False}, "error": obj({"code": STR, "message": STR})}),
    "TenantHealth": obj({
        "status": {"enum": ["ok", "degraded"]}, "tenant": STR, "redis": obj({"reachable": BOOL}),
        "queues": {"type": "object", "additionalProperties": obj({"depth": nullable("integer"),
                                                                  "oldest_age_seconds": nullable("integer")})}}),
    "LandlordHealth": obj({
        "status": {"enum": ["ok", "degraded"]}, "redis": obj({"reachable": BOOL}),
        "queues": {"type": "object", "additionalProperties": obj({"pending": nullable("integer"),
                                                                  "wait_seconds": nullable("number")})},
        "failed_jobs": nullable("integer")}),
    "TenantList": obj({"tenants": nullable({"type": "array", "items": STR})}),
    "PlatformStatus": obj({
        "status": STATE3,
        "components": {"type": "object", "additionalProperties": obj(
            {"status": {"enum": ["ok", "unhealthy"]}, "error": STR, "address": STR}, ["status"])},
        "version": STR, "uptime": STR,
        "nats": nullable(obj({"url": nullable("string"), "version": nullable("string")})),
        "streams": {"type": "array", "items": obj({"name": nullable("string"), "messages": nullable("integer"),
                                                   "bytes": nullable("integer"), "consumers": nullable("integer")})},
        "kv_buckets": {"type": "array", "items": obj({"name": nullable("string"), "keys": nullable("integer"),
                                                      "bytes": nullable("integer")})},
        "object_stores": {"type": "array", "items": obj({"name": nullable("string"), "size": nullable("integer")})},
        "jobs": nullable(obj({k: nullable("integer") for k in ("total", "unprocessed", "processing", "completed",
                                                                "failed", "dlq")})),
        "agents": nullable(obj({"total": nullable("integer"), "ready": nullable("integer"), "agents": {
            "type": "array", "items": obj({"hostname": nullable("string"), "labels": STR,
                                           "registered": nullable("string")})}})),
        "consumers": nullable(obj({"total": nullable("integer"), "consumers": {"type": "array", "items": obj({
            "name": nullable("string"), "pending": nullable("integer"), "ack_pending": nullable("integer"),
            "redelivered": nullable("integer")})}})),
        "registry": {"type": "array", "items": obj({
            "type": nullable("string"), "hostname": nullable("string"), "status": nullable("string"),
            "conditions": {"type": "array", "items": STR}, "age": nullable("string"),
            "cpu_percent": nullable("number"), "mem_bytes": nullable("integer")})},
    }),
    "ServiceHealth": obj({"status": {"enum": ["ok", "degraded"]}, "version": STR, "build_git_hash": STR,
                          "build_timestamp": STR, "uptime_ms": INT}),
    "ServiceDetailed": obj({
        "status": {"enum": ["ok", "degraded"]}, "version": STR,
        "services": {"type": "object", "additionalProperties": obj({
            "status": {"enum": ["ok", "error", "degraded"]}, "latency_ms": nullable("integer")})},
        "resources": nullable(obj({"cpu_used_percent": nullable("number"), "memory_available_mb": nullable("integer"),
                                   "memory_used_percent": nullable("number")})),
        "pipeline": nullable({"type": "object"}),
        "schema": nullable(obj({"table_exists": BOOL, "applied": {"type": "array", "items": {"type": "object"}},
                                "required": {"type": "array"}, "ok": BOOL})),
        "identities": nullable({"type": "object"}),
        "integrations": {"type": "object", "additionalProperties": nullable({"type": "object"})},
        "config": {"type": "object", "additionalProperties": BOOL},
    }),
    "Consistency": obj({
        "status": {"enum": ["ok", "degraded"]}, "checked_at": nullable("string"),
        "checks": {"type": "array", "items": obj({
            "check": STR, "severity": {"enum": ["warn", "info", "error", "critical"]}, "count": INT,
            "files": {"type": "array", "items": obj({"file_name": ANY, "file_uuid": ANY, "status": ANY,
                                                     "detail": ANY})}})}}),
    "Queues": obj({"success": {"const": True}, "data": obj({"queues": {"type": "array", "items": obj({
        "name": STR, "priority": STR, "active_jobs": nullable("integer"), "waiting_jobs": nullable("integer"),
        "completed_last_hour": nullable("integer"), "failed_jobs": nullable("integer"),
        "status": {"enum": ["healthy", "warning", "critical"]}})}})}),
    "Jobs": obj({"success": {"const": True}, "data": obj({
        "jobs": {"type": "array", "items": obj({
            "id": nullable("string"), "queue": STR, "status": {"enum": ["active", "waiting", "failed", "completed"]},
            "payload": ANY, "error": nullable(obj({"message": nullable("string"), "stack_trace": nullable("string")})),
            "attempts": nullable("integer"), "created_at": nullable("string"), "updated_at": nullable("string")})},
        "pagination": obj({"total": INT, "limit": INT, "offset": INT})})}),
    "Infrastructure": obj({"success": {"const": True}, "data": obj({"services": {"type": "array", "items": obj({
        "name": STR, "status": {"enum": ["healthy", "degraded", "down"]},
        "response_time_ms": obj({"avg": nullable("integer"), "p95": nullable("integer"), "p99": nullable("integer")}),
        "error_rate_percent": nullable("number"), "queue_backlog": INT, "connection_pool_usage_percent": NUM,
        "query_latency_ms": INT, "reason": STR}, ["name", "status", "response_time_ms", "error_rate_percent"])}})}),
    "Alerts": obj({"success": {"const": True}, "data": obj({"alerts": {"type": "array", "items": obj({
        "id": STR, "timestamp": STR, "severity": {"enum": ["error", "warning", "info"]}, "service": nullable("string"),
        "message": nullable("string"), "acknowledged": BOOL})}})}),
    "Plannings": obj({
        "status": {"enum": ["healthy", "degraded", "unhealthy"]}, "issues": {"type": "array", "items": STR},
        "workers": {"type": "object", "additionalProperties": nullable("string")}, "inQuietHours": BOOL,
        "queue": obj({k: nullable("integer") for k in ("depth", "ready", "locked")}),
        "backups": obj({k: nullable("integer") for k in ("total", "covered", "disabled")}),
        "lastBackupWrite": nullable(obj({"planningFullId": ANY, "changed": nullable("boolean"),
                                         "nbEvents": nullable("integer"), "at": nullable("string")})),
        "failedHosts": nullable({"type": "array", "maxItems": 5, "items": obj({
            "host": ANY, "count": nullable("integer"), "lastFailure": ANY})}),
        "recentFailures": nullable({"type": "array", "maxItems": 5, "items": obj({
            "planningFullId": ANY, "failureKind": ANY, "failures": nullable("integer"),
            "disabledUntil": nullable("string")})}),
    }),
}


def _get(summary: str, responses: dict[str, Any], tag: str, security: list[dict[str, list[str]]] | None = None,
         parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    op["security"] = security if security is not None else []
    if parameters:
        op["parameters"] = parameters
    return {"get": op}


def _laravel(ok: str, unreachable: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out = {"200": answer("Redis reachable.", ref(ok)),
           "401": answer("No or unknown bearer token.", ref("LaravelMessage")),
           "403": answer("The token may not view this.", ref("LaravelMessage")),
           "404": answer("Unknown tenant, or the shim is disabled.", {"anyOf": [ref("LaravelMessage"), ref("Error")]}),
           "503": answer(unreachable, ref(ok))}
    if params:
        out["400"] = answer("No tenant given and the token has not exactly one.", ref("LaravelMessage"))
    return out


def _envelope(ok: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    err = ref("EnvelopeError")
    out = {"200": answer("OK.", ref(ok)), "400": answer("Invalid parameters.", err),
           "401": answer("Missing or invalid token.", err), "403": answer("No ops role.", err),
           "404": answer("Unknown queue, or the shim is disabled.", {"anyOf": [err, ref("Error")]}),
           "429": answer("Rate limit exceeded.", err)}
    out.update(extra or {})
    return out


BEARER = [{"bearer": []}]
PATHS: dict[str, Any] = {
    "/metrics": _get("Prometheus exposition of the current snapshot.", {"200": {
        "description": "Text format or OpenMetrics by Accept.",
        "content": {"text/plain": {"schema": STR}, "application/openmetrics-text": {"schema": STR}}}}, "exporter"),
    "/": _get("Landing page.", {"200": answer("HTML.", STR, "text/html")}, "exporter"),
    "/healthz": _get("Liveness.", {"200": answer("Alive.", obj({"status": {"const": "ok"}}))}, "exporter"),
    "/readyz": _get("Readiness: every source collected once.", {
        "200": answer("Ready.", obj({"status": {"const": "ready"}})),
        "503": answer("Starting.", obj({"status": {"const": "starting"}, "waiting_for": {
            "type": "array", "items": STR}}))}, "exporter"),
    "/openapi.json": _get("This document.", {"200": answer("OpenAPI 3.1.", {"type": "object"})}, "exporter"),
    "/-/reload": {"post": {
        "summary": "Reload the config file (like SIGHUP); a bad new config keeps the running one.",
        "tags": ["exporter"], "security": [],
        "responses": {
            "200": answer("Reloaded.", obj({"status": {"const": "reloaded"}})),
            "401": {"description": "Basic auth required (when the web config sets users)."},
            "500": answer("The new config is invalid; the running one stays.", obj({
                "status": {"const": "error"}, "error": STR})),
            "503": answer("This process cannot reload.", obj({"status": {"const": "error"}, "error": STR}))}}},
    "/api/v1/health": _get("Seed 000: a tenant's event and heartbeat queues.", _laravel(
        "TenantHealth", "Redis unreachable: degraded, every queue value null.", [{}]), "000 tenant", BEARER,
        [query("tenant", STR, "Tenant id; defaults to the token's only tenant.")]),
    "/api/v1/landlord/health": _get("Seed 000: every Horizon queue (super admin).", _laravel(
        "LandlordHealth", "Backend unreachable: degraded, queues empty, failed_jobs null."), "000 tenant", BEARER),
    "/api/v1/landlord/tenants": _get("Seed 000: tenants to poll (super admin).", _laravel(
        "TenantList", "Redis unreachable: tenants null."), "000 tenant", BEARER),
    "/api/health/status": _get("Seed 001: per-component health with system metrics.", {
        "200": answer("All components healthy.", ref("PlatformStatus")),
        "401": answer("Unauthorized - API key required.", ref("StatusError")),
        "403": answer("Forbidden - Insufficient permissions.", ref("StatusError")),
        "404": NOT_FOUND,
        "503": answer("One or more components unhealthy.", ref("PlatformStatus"))}, "001 status",
        [{"apiKey": []}, {"bearer": []}]),
    "/health": _get("Seed 002: basic health for load balancers (public).", {
        "200": answer("ok or degraded.", ref("ServiceHealth")), "404": NOT_FOUND}, "002 service"),
    "/health/detailed": _get("Seed 002: full system health.", {
        "200": answer("ok or degraded.", ref("ServiceDetailed")),
        "401": answer("Authentication required.", ref("Error")), "404": NOT_FOUND}, "002 service",
        [{"apiKey": []}, {"bearer": []}]),
    "/health/consistency": _get("Seed 002: data consistency checks.", {
        "200": answer("Checks.", ref("Consistency")),
        "401": answer("Authentication required.", ref("Error")), "404": NOT_FOUND}, "002 service",
        [{"apiKey": []}, {"bearer": []}]),
    "/api/v1/platform/system/queues": _get("Seed 003: background job queues.", _envelope("Queues"),
                                           "003 platform", BEARER),
    "/api/v1/platform/system/queues/{queue_name}/jobs": _get(
        "Seed 003: jobs of one queue (live, read-only).",
        _envelope("Jobs", {"503": answer("The queue backend did not answer in time.", ref("EnvelopeError"))}),
        "003 platform", BEARER, [
            {"name": "queue_name", "in": "path", "required": True, "schema": STR},
            query("status", {"enum": ["active", "waiting", "failed", "completed"]}, "Default waiting."),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "Default 50, max 100."),
            query("offset", {"type": "integer", "minimum": 0}, "Pagination offset.")]),
    "/api/v1/platform/system/infrastructure/health": _get("Seed 003: service health.", _envelope("Infrastructure"),
                                                          "003 platform", BEARER),
    "/api/v1/platform/system/infrastructure/alerts": _get(
        "Seed 003: recent infrastructure alerts.",
        _envelope("Alerts", {"503": answer("The configured Alertmanager did not answer.", ref("EnvelopeError"))}),
        "003 platform", BEARER, [
            query("hours", {"type": "integer", "minimum": 1, "maximum": 168}, "Default 24, max 168."),
            query("severity", {"enum": ["error", "warning", "info"]}, "Only this severity.")]),
    "/api/ops/plannings": _get("Seed 004: planning refresh health.", {
        "200": answer("Health.", ref("Plannings")),
        "404": answer("Missing or wrong x-ops-token (or the shim is disabled).", ref("Error"))}, "004 ops",
        [{"opsToken": []}]),
}


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "jobqueue-exporter", "version": __version__,
                 "description": "Prometheus exporter endpoints and the JSON health APIs it can serve."},
        "paths": PATHS,
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "opsToken": {"type": "apiKey", "in": "header", "name": "x-ops-token"}}},
    }


def rendered() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


@routes.get("/openapi.json")
async def get_openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of every path served here."""
    return web.json_response(document())


if __name__ == "__main__":
    sys.stdout.write(rendered())
