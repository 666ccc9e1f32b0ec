"""Seed 004 (planning-refresh system): GET /api/ops/plannings behind `x-ops-token`.

A missing or wrong token is 404 {"error": "NOT_FOUND"}, as the seed documents, so the endpoint does
not reveal itself. It is open without a token only when the shim says `production: false` and no
token with the ops role is set. Status and issue texts come from the bound system's rules.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exporter.health.config import Ref, Shim
from exporter.health.data import read
from exporter.health.rules import INFO, OK
from exporter.values import as_bool, as_int, as_time, iso
from exporter.web.auth import AUTHENTICATOR, OPS_HEADERS, presented
from exporter.web.schema import (
    ANY,
    BOOL,
    STR,
    answer,
    get_op,
    nullable,
    obj,
    ref,
)
from exporter.web.shims.base import Reply, ShimDef, View, enabled, respond, view


class OpsShim(Shim):
    """Seed 004: /api/ops/plannings of the planning-refresh system."""

    production: bool = True
    queue: Ref | None = None  # {depth, ready, locked}
    backups: Ref | None = None  # {total, covered, disabled}
    last_backup_write: Ref | None = None
    failed_hosts: Ref | None = None  # list of {host, count, lastFailure}
    recent_failures: Ref | None = None  # list of {planningFullId, failureKind, failures, disabledUntil}


routes = web.RouteTableDef()
NOT_FOUND: Reply = (404, {"error": "NOT_FOUND"})
_STATUS = {OK: "healthy", "degraded": "degraded", "unhealthy": "unhealthy"}


def _record(v: View, ref: Ref | None) -> Any:
    return read(v.snapshot, ref.source, ref.path) if ref is not None else None


def _counts(v: View, ref: Ref | None, keys: tuple[str, ...]) -> dict[str, int | None]:
    value = _record(v, ref)
    value = value if isinstance(value, dict) else {}
    return {k: as_int(value.get(k)) for k in keys}


def _list(value: Any) -> list[dict[str, Any]]:
    return [dict(x) for x in value if isinstance(x, dict)] if isinstance(value, list) else []


def plannings(v: View, shim: OpsShim) -> Reply:
    """The seed's document: status, issues, workers, quiet hours, queue, backups and failures."""
    health = v.health
    status = _STATUS.get(health.status if health else "unhealthy", "unhealthy")
    last = _record(v, shim.last_backup_write)
    last_write = None
    if isinstance(last, dict):
        last_write = {"planningFullId": last.get("planningFullId"), "changed": as_bool(last.get("changed")),
                      "nbEvents": as_int(last.get("nbEvents")), "at": iso(as_time(last.get("at")), millis=True)}
    hosts = sorted(_list(_record(v, shim.failed_hosts)), key=lambda h: -(as_int(h.get("count")) or 0))[:5]
    failures = _list(_record(v, shim.recent_failures))[:5]
    body = {
        "status": status,
        "issues": [i.text for i in health.issues if i.severity != INFO] if health else ["Health not evaluated"],
        "workers": {w.name: w.state for w in health.workers.values()} if health else {},
        "inQuietHours": bool(health.in_quiet_hours) if health else False,
        "queue": _counts(v, shim.queue, ("depth", "ready", "locked")),
        "backups": _counts(v, shim.backups, ("total", "covered", "disabled")),
        "lastBackupWrite": last_write,
        "failedHosts": [{"host": h.get("host"), "count": as_int(h.get("count")), "lastFailure": h.get("lastFailure")}
                        for h in hosts] or None,
        "recentFailures": [{"planningFullId": f.get("planningFullId"), "failureKind": f.get("failureKind"),
                            "failures": as_int(f.get("failures")),
                            "disabledUntil": iso(as_time(f.get("disabledUntil")), millis=True)}
                           for f in failures] or None,
    }
    return 200, body


def allowed(request: web.Request, shim: OpsShim) -> bool:
    """A valid ops token; or no token at all when not in production and no ops token is set."""
    caller = presented(request, OPS_HEADERS)
    if caller.credential is not None and "ops" in caller.credential.roles:
        return True
    return not shim.production and not request.app[AUTHENTICATOR].has_role("ops")


@routes.get("/api/ops/plannings")
async def get_plannings(request: web.Request) -> web.Response:
    """Seed 004: planning refresh health (x-ops-token; 404 when missing or wrong)."""
    shim = enabled(request, "ops", OpsShim)
    if not allowed(request, shim):
        return respond(NOT_FOUND)
    return respond(plannings(await view(request, shim), shim))


# --- what the rest of the daemon knows of this shim (exporter/web/shims/__init__.py) ---

SCHEMAS: dict[str, Any] = {
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
PATHS: dict[str, Any] = {
    "/api/ops/plannings": get_op("Seed 004: planning refresh health.", {
        "200": answer("Health.", ref("Plannings")),
        "404": answer("Missing or wrong x-ops-token (or the shim is disabled).", ref("Error"))}, "004 ops",
        [{"opsToken": []}]),
}
ENDPOINTS = (("/api/ops/plannings", "Health of the planning refresh jobs (ops token)."),)

SHIM = ShimDef("ops", OpsShim, routes, PATHS, SCHEMAS, ("opsToken",), endpoints=ENDPOINTS)
