"""Seed 001 (NATS JetStream job platform): GET /api/health/status with every documented block.

Blocks come from the NATS source's typed facts (`NatsState`, `RegistryJobs`, `RegistryAgents`); a block
whose source is down is null (lists are empty), never yesterday's numbers. 503 when the bound
system is unhealthy, which any unreachable or unhealthy component makes it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exporter import __version__
from exporter.facts import NatsState, RegistryAgents, RegistryJobs
from exporter.health.config import Ref, Shim, SourceName
from exporter.health.data import read
from exporter.health.rules import UNHEALTHY, ago
from exporter.values import as_int, as_number
from exporter.web.auth import presented
from exporter.web.schema import (
    INT,
    NOT_FOUND,
    STATE3,
    STR,
    answer,
    get_op,
    nullable,
    obj,
    ref,
)
from exporter.web.shims.base import Reply, ShimDef, View, enabled, respond, system_sources, view


class StatusShim(Shim):
    """Seed 001: /api/health/status of the NATS job platform."""

    permission: str = "health:read"
    nats: SourceName | None = None
    registry: list[Ref] = []  # lists of {type, hostname, status, conditions, age, cpu_percent, mem_bytes}
    version: str | None = None


routes = web.RouteTableDef()


def _error(code: int, error: str, details: str) -> Reply:
    return code, {"error": error, "details": details, "code": code}


def go_duration(seconds: float) -> str:
    """Uptime the way the seed writes it: '2h30m', '4m12s', '9s'."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _nats_source(v: View, shim: StatusShim) -> str | None:
    if shim.nats is not None:
        return shim.nats
    return next((s for s in system_sources(v, shim.system)
                 if (c := v.config.source(s)) is not None and c.type == "nats"), None)


def components(v: View, shim: StatusShim) -> dict[str, dict[str, Any]]:
    """One entry per source of the system (status, error when unhealthy, address when known)."""
    out: dict[str, dict[str, Any]] = {}
    for name in system_sources(v, shim.system):
        state = v.snapshot.sources.get(name)
        if state is None:
            continue
        entry: dict[str, Any] = {"status": "ok" if state.status.up else "unhealthy"}
        if not state.status.up:
            entry["error"] = state.status.error or ("not collected yet" if state.status.collections == 0
                                                    else state.status.error_kind or "error")
        nats = state.reading.fact(NatsState) if state.reading is not None else None
        if nats is not None:
            entry["address"] = nats.url
        out[name] = entry
    for issue in v.health.issues if v.health else ():
        if issue.id.startswith("component_unhealthy:"):
            out[issue.id.split(":", 1)[1]] = {"status": "unhealthy", "error": issue.text}
    return out


def platform_status(v: View, shim: StatusShim) -> Reply:
    """The whole status document; 503 when the system is unhealthy."""
    health = v.health
    status = health.status if health else UNHEALTHY
    nats = _nats_source(v, shim)
    reading = v.snapshot.reading(nats) if nats else None
    server = reading.fact(NatsState) if reading is not None else None
    body: dict[str, Any] = {
        "status": status,
        "components": components(v, shim),
        "version": shim.version or __version__,
        "uptime": go_duration(v.now - v.started_at),
        "nats": None, "streams": [], "kv_buckets": [], "object_stores": [],
        "jobs": None, "agents": None, "consumers": None, "registry": [],
    }
    if reading is not None and server is not None:
        body["nats"] = {"url": server.url, "version": server.version}
        body["streams"] = [{"name": s.name, "messages": s.messages, "bytes": s.bytes, "consumers": s.consumers}
                           for s in server.streams]
        body["kv_buckets"] = [{"name": name, "keys": keys, "bytes": size} for name, keys, size in server.kv_buckets]
        body["object_stores"] = [{"name": name, "size": size} for name, size in server.object_stores]
        jobs = reading.fact(RegistryJobs)
        if jobs is not None:
            body["jobs"] = {"total": jobs.total, **{k: jobs.states.get(k) for k in ("unprocessed", "processing",
                                                                                    "completed", "failed", "dlq")}}
        body["agents"], agents_registry = _agents(reading.fact(RegistryAgents), v.now)
        body["registry"].extend(agents_registry)
        body["consumers"] = {"total": len(server.consumers), "consumers": [
            {"name": c.name, "pending": c.pending, "ack_pending": c.ack_pending, "redelivered": c.redelivered}
            for c in server.consumers]}
    for where in shim.registry:
        body["registry"].extend(_registry_entry(r) for r in _dicts(read(v.snapshot, where.source, where.path)))
    return (503 if status == UNHEALTHY else 200), body


def _agents(agents: RegistryAgents | None, now: float) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    if agents is None:
        return None, []
    listed: list[dict[str, Any]] = []
    registry: list[dict[str, Any]] = []
    for a in agents.agents:
        beat = a.last_heartbeat
        listed.append({"hostname": a.hostname, "labels": a.labels,
                       "registered": f"{ago(now - beat)} ago" if beat is not None else None})
        registry.append({"type": "agent", "hostname": a.hostname, "status": a.status,
                         "conditions": ["HeartbeatStale"] if a.stale else [], "age": None,
                         "cpu_percent": None, "mem_bytes": None})
    return {"total": agents.total, "ready": agents.ready, "agents": listed}, registry


def _registry_entry(r: dict[str, Any]) -> dict[str, Any]:
    conditions = r.get("conditions")
    age = r.get("age")
    if not isinstance(age, str):
        seconds = as_number(age)
        age = go_duration(seconds) if seconds is not None else None
    return {"type": r.get("type"), "hostname": r.get("hostname") or r.get("name"), "status": r.get("status"),
            "conditions": [str(c) for c in conditions] if isinstance(conditions, list) else [],
            "age": age,
            "cpu_percent": as_number(r.get("cpu_percent")), "mem_bytes": as_int(r.get("mem_bytes"))}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


@routes.get("/api/health/status")
async def get_status(request: web.Request) -> web.Response:
    """Seed 001: per-component health with NATS, streams, KV, object stores, jobs, agents, consumers."""
    shim = enabled(request, "status", StatusShim)
    caller = presented(request)
    if not caller.sent:
        return respond(_error(401, "Unauthorized", "API key required."))
    if caller.credential is None:
        return respond(_error(401, "Unauthorized", "Invalid API key."))
    if shim.permission not in caller.credential.permissions and "*" not in caller.credential.permissions:
        return respond(_error(403, "Forbidden", "Insufficient permissions."))
    return respond(platform_status(await view(request, shim), shim))


# --- what the rest of the daemon knows of this shim (exporter/web/shims/__init__.py) ---

SCHEMAS: dict[str, Any] = {
    "StatusError": obj({"error": STR, "details": STR, "code": INT}),
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
}
PATHS: dict[str, Any] = {
    "/api/health/status": get_op("Seed 001: per-component health with system metrics.", {
        "200": answer("All components healthy.", ref("PlatformStatus")),
        "401": answer("Unauthorized - API key required.", ref("StatusError")),
        "403": answer("Forbidden - Insufficient permissions.", ref("StatusError")),
        "404": NOT_FOUND,
        "503": answer("One or more components unhealthy.", ref("PlatformStatus"))}, "001 status",
        [{"apiKey": []}, {"bearer": []}]),
}
ENDPOINTS = (("/api/health/status", "Health of each component, with host CPU and memory (API key)."),)

SHIM = ShimDef("status", StatusShim, routes, PATHS, SCHEMAS, ("apiKey", "bearer"), endpoints=ENDPOINTS)
