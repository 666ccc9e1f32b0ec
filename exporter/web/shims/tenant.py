"""Seed 000 (multi-tenant Laravel app): tenant queue health, landlord Horizon health, tenant list.

Auth follows Laravel Sanctum: no or unknown bearer token -> 401 {"message": "Unauthenticated."};
a token that may not view the tenant (or is not a super admin) -> 403 {"message": "This action is
unauthorized."}. Redis unreachable -> `degraded`, nulls and 503, exactly as the seed documents.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exporter.facts import HorizonState, Tenants
from exporter.health.config import Shim, SourceName
from exporter.health.data import QueueIndex
from exporter.web.auth import Credential, presented
from exporter.web.schema import (
    BEARER,
    BOOL,
    STR,
    answer,
    get_op,
    nullable,
    obj,
    query,
    ref,
)
from exporter.web.shims.base import Reply, ShimDef, View, enabled, respond, view


class TenantShim(Shim):
    """Seed 000: tenant health, landlord (Horizon) health and the tenant list."""

    source: SourceName
    queues: dict[str, str] = {"events": "events", "heartbeats": "heartbeats"}
    horizon_tenant: str = ""


routes = web.RouteTableDef()
_INDEX = QueueIndex()
UNAUTHENTICATED: Reply = (401, {"message": "Unauthenticated."})
FORBIDDEN: Reply = (403, {"message": "This action is unauthorized."})


def tenant_health(v: View, shim: TenantShim, tenant: str) -> Reply:
    """Depth and oldest-item age of the tenant's queues; nulls and 503 while Redis is unreachable."""
    state = v.snapshot.sources.get(shim.source)
    reading = v.snapshot.reading(shim.source)
    if state is None or reading is None:
        queues = {name: {"depth": None, "oldest_age_seconds": None} for name in shim.queues}
        return 503, {"status": "degraded", "tenant": tenant, "redis": {"reachable": False}, "queues": queues}
    observed = state.status.observed_at
    out = {}
    for name, queue in shim.queues.items():
        q = _INDEX.get(reading, tenant, queue)
        depth = q.depth if q is not None else 0
        age = None
        if q is not None and depth > 0 and q.oldest_timestamp is not None:
            age = max(0, int(observed - q.oldest_timestamp))
        out[name] = {"depth": depth, "oldest_age_seconds": age}
    return 200, {"status": "ok", "tenant": tenant, "redis": {"reachable": True}, "queues": out}


def landlord_health(v: View, shim: TenantShim) -> Reply:
    """Every Horizon queue's pending and wait, and recent failed jobs; empty and null with 503 when down."""
    reading = v.snapshot.reading(shim.source)
    if reading is None:
        return 503, {"status": "degraded", "redis": {"reachable": False}, "queues": {}, "failed_jobs": None}
    entry = next((h for h in reading.facts_of(HorizonState) if h.tenant == shim.horizon_tenant), None)
    queues: dict[str, dict[str, int | float | None]] = {}
    failed = None
    if entry is not None:
        for name, q in sorted(entry.queues.items()):
            queues[name] = {"pending": q.pending, "wait_seconds": q.wait_seconds}
        failed = entry.failed_jobs
    return 200, {"status": "ok", "redis": {"reachable": True}, "queues": queues, "failed_jobs": failed}


def tenant_list(v: View, shim: TenantShim) -> Reply:
    """The tenants the source reads (its discovery), for monitors that poll each tenant."""
    reading = v.snapshot.reading(shim.source)
    if reading is None:
        return 503, {"tenants": None}
    known = reading.fact(Tenants)
    tenants = known.ids if known is not None else {q.tenant for q in reading.queues if q.tenant}
    return 200, {"tenants": sorted(tenants)}


def _caller(request: web.Request) -> Credential | None:
    return presented(request, ("authorization",)).credential


@routes.get("/api/v1/health")
async def get_tenant_health(request: web.Request) -> web.Response:
    """Seed 000: depth and oldest age of one tenant's event and heartbeat queues."""
    shim = enabled(request, "tenant", TenantShim)
    credential = _caller(request)
    if credential is None:
        return respond(UNAUTHENTICATED)
    tenant = request.query.get("tenant")
    if tenant is None:
        own = sorted(credential.tenants - {"*"})
        if len(own) != 1:
            return respond((400, {"message": "The tenant parameter is required."}))
        tenant = own[0]
    if not credential.can_view(tenant):
        return respond(FORBIDDEN)
    v = await view(request, shim)
    reading = v.snapshot.reading(shim.source)
    known = reading.fact(Tenants) if reading is not None else None
    if known is not None and tenant not in known.ids:
        return respond((404, {"message": "Not Found."}))
    return respond(tenant_health(v, shim, tenant))


def _super_admin(request: web.Request) -> Reply | None:
    credential = _caller(request)
    if credential is None:
        return UNAUTHENTICATED
    return None if "super_admin" in credential.roles else FORBIDDEN


@routes.get("/api/v1/landlord/health")
async def get_landlord_health(request: web.Request) -> web.Response:
    """Seed 000: pending and wait of every Horizon queue plus recent failed jobs (super admin)."""
    shim = enabled(request, "tenant", TenantShim)
    denied = _super_admin(request)
    return respond(denied or landlord_health(await view(request, shim), shim))


@routes.get("/api/v1/landlord/tenants")
async def get_landlord_tenants(request: web.Request) -> web.Response:
    """Seed 000: the tenants a monitor should poll (super admin)."""
    shim = enabled(request, "tenant", TenantShim)
    denied = _super_admin(request)
    return respond(denied or tenant_list(await view(request, shim), shim))


# --- what the rest of the daemon knows of this shim (exporter/web/shims/__init__.py) ---

def _laravel(ok: str, unreachable: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out = {"200": answer("Redis reachable.", ref(ok)),
           "401": answer("No or unknown bearer token.", ref("LaravelMessage")),
           "403": answer("The token may not view this.", ref("LaravelMessage")),
           "404": answer("Unknown tenant, or the shim is disabled.", {"anyOf": [ref("LaravelMessage"), ref("Error")]}),
           "503": answer(unreachable, ref(ok))}
    if params:
        out["400"] = answer("No tenant given and the token has not exactly one.", ref("LaravelMessage"))
    return out


SCHEMAS: dict[str, Any] = {
    "LaravelMessage": obj({"message": STR}),
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
}
PATHS: dict[str, Any] = {
    "/api/v1/health": get_op("Seed 000: a tenant's event and heartbeat queues.", _laravel(
        "TenantHealth", "Redis unreachable: degraded, every queue value null.", [{}]), "000 tenant", BEARER,
        [query("tenant", STR, "Tenant id; defaults to the token's only tenant.")]),
    "/api/v1/landlord/health": get_op("Seed 000: every Horizon queue (super admin).", _laravel(
        "LandlordHealth", "Backend unreachable: degraded, queues empty, failed_jobs null."), "000 tenant", BEARER),
    "/api/v1/landlord/tenants": get_op("Seed 000: tenants to poll (super admin).", _laravel(
        "TenantList", "Redis unreachable: tenants null."), "000 tenant", BEARER),
}
ENDPOINTS = (
    ("/api/v1/health", "Health of one tenant's queues (bearer token)."),
    ("/api/v1/landlord/health", "Every queue of every tenant, for administrators."),
    ("/api/v1/landlord/tenants", "The tenants a monitor should poll, for administrators."),
)

SHIM = ShimDef("tenant", TenantShim, routes, PATHS, SCHEMAS, ("bearer",), endpoints=ENDPOINTS)
