"""Seed 001 (NATS JetStream job platform): GET /api/health/status with every documented block.

Blocks come from the NATS source's details (`exporter/sources/nats.py` documents them); a block
whose source is down is null (lists are empty), never yesterday's numbers. 503 when the bound
system is unhealthy, which any unreachable or unhealthy component makes it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exporter import __version__
from exporter.health.config import StatusShim
from exporter.health.data import as_int, as_number, as_time, dig, read
from exporter.health.rules import UNHEALTHY, ago
from exporter.web.auth import presented
from exporter.web.shims import Reply, View, enabled, respond, system_sources, view

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


def _labels(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


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
        address = read(v.snapshot, name, "nats.url")
        if isinstance(address, str):
            entry["address"] = address
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
    d = reading.details if reading is not None else None
    body: dict[str, Any] = {
        "status": status,
        "components": components(v, shim),
        "version": shim.version or __version__,
        "uptime": go_duration(v.now - v.started_at),
        "nats": None, "streams": [], "kv_buckets": [], "object_stores": [],
        "jobs": None, "agents": None, "consumers": None, "registry": [],
    }
    if d is not None:
        body["nats"] = {"url": dig(d, "nats.url"), "version": dig(d, "nats.version")}
        body["streams"] = [{"name": s.get("name"), "messages": as_int(s.get("messages")),
                            "bytes": as_int(s.get("bytes")), "consumers": as_int(s.get("consumers"))}
                           for s in _dicts(dig(d, "streams"))]
        body["kv_buckets"] = [{"name": b.get("name"), "keys": as_int(b.get("keys")), "bytes": as_int(b.get("bytes"))}
                              for b in _dicts(dig(d, "kv_buckets"))]
        body["object_stores"] = [{"name": o.get("name"), "size": as_int(o.get("size"))}
                                 for o in _dicts(dig(d, "object_stores"))]
        jobs = dig(d, "jobs")
        if isinstance(jobs, dict):
            body["jobs"] = {k: as_int(jobs.get(k)) for k in ("total", "unprocessed", "processing", "completed",
                                                             "failed", "dlq")}
        body["agents"], agents_registry = _agents(dig(d, "agents"), v.now)
        body["registry"].extend(agents_registry)
        consumers = dig(d, "consumers")
        if isinstance(consumers, dict):
            body["consumers"] = {"total": as_int(consumers.get("total")), "consumers": [
                {"name": c.get("name"), "pending": as_int(c.get("pending")),
                 "ack_pending": as_int(c.get("ack_pending")), "redelivered": as_int(c.get("redelivered"))}
                for c in _dicts(consumers.get("consumers"))]}
    for ref in shim.registry:
        body["registry"].extend(_registry_entry(r) for r in _dicts(read(v.snapshot, ref.source, ref.path)))
    return (503 if status == UNHEALTHY else 200), body


def _agents(agents: Any, now: float) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    if not isinstance(agents, dict):
        return None, []
    listed, registry = [], []
    for a in _dicts(agents.get("agents")):
        beat = as_time(a.get("last_heartbeat"))
        listed.append({"hostname": a.get("hostname"), "labels": _labels(a.get("labels")),
                       "registered": f"{ago(now - beat)} ago" if beat is not None else None})
        registry.append({"type": "agent", "hostname": a.get("hostname"), "status": a.get("status"),
                         "conditions": ["HeartbeatStale"] if a.get("stale") else [], "age": None,
                         "cpu_percent": None, "mem_bytes": None})
    return {"total": as_int(agents.get("total")), "ready": as_int(agents.get("ready")), "agents": listed}, registry


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
    return respond(platform_status(view(request, shim), shim))
