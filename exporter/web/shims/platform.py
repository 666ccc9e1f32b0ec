"""Seed 003 (email platform's system-monitoring API): queues, one queue's jobs, infrastructure
health and alerts, in the {"success": true, "data": ...} envelope.

Errors use {"success": false, "error": {"code", "message"}}: 400 invalid parameters, 401 missing
or invalid token, 403 without the ops role, 404 unknown queue, 429 past the configured rate. The
jobs listing is the one live backend read (`exporter/sources/redis/jobs.py`), under its own timeout;
when the backend does not answer in time it is a 503 (documented in the OpenAPI document).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from typing import Any

import aiohttp
from aiohttp import web
from redis.exceptions import RedisError

from exporter.health.config import PlatformShim
from exporter.health.data import as_number, as_time, iso, matching_queues
from exporter.health.rules import INFO, UNHEALTHY, queue_level
from exporter.sources.redis import jobs as redis_jobs
from exporter.web.auth import RateLimiter, presented
from exporter.web.keys import SCHEDULER
from exporter.web.shims import Reply, View, enabled, respond, system_sources, view

log = logging.getLogger("jobqueue.web.platform")
routes = web.RouteTableDef()
LIMITER = web.AppKey("platform_limiter", RateLimiter)
SEVERITIES = ("error", "warning", "info")
_SEVERITY = {UNHEALTHY: "error", "degraded": "warning", INFO: "info"}


def ok(data: Any) -> Reply:
    return 200, {"success": True, "data": data}


def fail(status: int, code: str, message: str) -> Reply:
    return status, {"success": False, "error": {"code": code, "message": message}}


def queue_rows(v: View) -> list[dict[str, Any]]:
    """Every queue of the system: totals over matched tenants, status from the thresholds (worst tenant)."""
    config = v.config.system(v.health.name if v.health else "")
    rows: list[dict[str, Any]] = []
    for rule in config.queues if config else []:
        reading = v.snapshot.reading(rule.source)
        if reading is None:
            if rule.queue != "*":
                rows.append({"name": rule.queue, "priority": rule.priority, "active_jobs": None,
                             "waiting_jobs": None, "completed_last_hour": None, "failed_jobs": None,
                             "status": "critical"})
            continue
        history = v.monitor.history
        for name, s in history.summary(rule.source, reading, rule.queue, rule.tenant).items():
            rows.append({
                "name": name, "priority": rule.priority, "active_jobs": s.active, "waiting_jobs": s.total,
                "completed_last_hour": s.completed_last_hour,
                "failed_jobs": s.failed_total, "status": queue_level(s.worst, s.failed_worst, rule),
            })
    return rows


def _ms(values: list[float], q: float) -> int | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0] * 1000)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000)


def infrastructure(v: View, shim: PlatformShim) -> Reply:
    """One entry per source of the system: healthy / degraded (issues) / down (unreachable)."""
    out = []
    for name in system_sources(v, shim.system):
        state = v.snapshot.sources.get(name)
        if state is None:
            continue
        issues = v.health.issues_of(name) if v.health else []
        issues = [i for i in issues if i.severity != INFO]
        status = "down" if not state.status.up else ("degraded" if issues else "healthy")
        latencies = v.monitor.history.latencies(name)
        entry: dict[str, Any] = {"name": shim.service_names.get(name, name), "status": status}
        entry["response_time_ms"] = {"avg": round(statistics.fmean(latencies) * 1000) if latencies else None,
                                     "p95": _ms(latencies, 95), "p99": _ms(latencies, 99)}
        rate = v.monitor.history.error_rate(name)
        entry["error_rate_percent"] = round(rate, 2) if rate is not None else None
        reading = state.reading
        if reading is not None:
            if reading.queues:
                entry["queue_backlog"] = sum(q.depth for q in reading.queues)
            pool = _pool_percent(reading.details.get("connections") or reading.details.get("pool"))
            if pool is not None:
                entry["connection_pool_usage_percent"] = pool
            if reading.latency is not None:
                entry["query_latency_ms"] = round(reading.latency * 1000)
        if status == "down":
            entry["reason"] = state.status.error or "not collected yet"
        elif issues:
            entry["reason"] = "; ".join(i.text for i in issues)
        out.append(entry)
    return ok({"services": out})


def _pool_percent(pool: Any) -> float | None:
    if not isinstance(pool, dict):
        return None
    for key in ("usage_percent", "used_percent"):
        if (value := as_number(pool.get(key))) is not None:
            return round(value, 1)
    used, size = as_number(pool.get("used") or pool.get("in_use")), as_number(pool.get("size") or pool.get("max"))
    return round(100.0 * used / size, 1) if used is not None and size else None


def own_alerts(v: View, hours: int, severity: str | None) -> list[dict[str, Any]]:
    """Issues raised in the window, newest first, from the exporter's own issue history."""
    since = v.now - hours * 3600
    out = []
    for event in reversed(v.monitor.events):
        if event.system != (v.health.name if v.health else None) or event.at < since:
            continue
        level = _SEVERITY.get(event.issue.severity, "warning")
        if severity is None or level == severity:
            out.append({"id": f"alert_{event.number}", "timestamp": _iso(event.at), "severity": level,
                        "service": event.issue.source or event.system, "message": event.issue.text,
                        "acknowledged": False})
    return out


def _iso(ts: float) -> str:
    return iso(ts) or ""


def alertmanager_alerts(raw: Any, hours: int, severity: str | None, now: float) -> list[dict[str, Any]]:
    """Alertmanager API v2 alerts in the seed's shape: critical -> error; silenced or inhibited = acknowledged."""
    out = []
    for alert in raw if isinstance(raw, list) else []:
        if not isinstance(alert, dict):  # another system's answer: take what has the documented shape
            continue
        labels, notes = alert.get("labels"), alert.get("annotations")
        labels, notes = (labels if isinstance(labels, dict) else {}), (notes if isinstance(notes, dict) else {})
        started = as_time(alert.get("startsAt"))
        if started is None or started < now - hours * 3600:
            continue
        level = {"critical": "error", "page": "error", "warning": "warning", "info": "info"}.get(
            labels.get("severity", ""), "warning")
        if severity is not None and level != severity:
            continue
        status = alert.get("status")
        state = status.get("state") if isinstance(status, dict) else None
        out.append({"id": f"alert_{alert.get('fingerprint', '')}", "timestamp": _iso(started), "severity": level,
                    "service": labels.get("system") or labels.get("service") or labels.get("job")
                    or labels.get("alertname"), "message": notes.get("summary") or notes.get("description")
                    or labels.get("alertname"), "acknowledged": state == "suppressed"})
    out.sort(key=lambda a: a["timestamp"], reverse=True)
    return out


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int | Reply:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or not low <= int(raw) <= high:
        return fail(400, "INVALID_PARAMETER", f"{name} must be an integer from {low} to {high}")
    return int(raw)


def _guard(request: web.Request) -> tuple[PlatformShim, Reply | None]:
    """Enabled, within the rate, authenticated, with the ops role: the seed's 404/429/401/403."""
    shim = enabled(request, "platform", PlatformShim)
    limiter = request.app[LIMITER]
    caller = presented(request, ("authorization",))
    client = caller.credential.name if caller.credential else (request.remote or "unknown")
    if not limiter.allow(client):
        return shim, fail(429, "RATE_LIMITED", "Rate limit exceeded")
    if caller.credential is None:
        return shim, fail(401, "UNAUTHORIZED", "Missing or invalid token")
    if shim.role not in caller.credential.roles:
        return shim, fail(403, "FORBIDDEN", "Ops role required")
    return shim, None


def _reply(reply: Reply, request: web.Request) -> web.Response:
    headers = None
    if reply[0] == 429:
        caller = presented(request, ("authorization",))
        client = caller.credential.name if caller.credential else (request.remote or "unknown")
        headers = {"Retry-After": str(request.app[LIMITER].retry_after(client))}
    return respond(reply, headers)


@routes.get("/api/v1/platform/system/queues")
async def get_queues(request: web.Request) -> web.Response:
    """Seed 003: every background queue with active, waiting, completed, failed and a status."""
    shim, denied = _guard(request)
    if denied:
        return _reply(denied, request)
    return respond(ok({"queues": queue_rows(view(request, shim))}))


@routes.get("/api/v1/platform/system/queues/{queue_name}/jobs")
async def get_queue_jobs(request: web.Request) -> web.Response:
    """Seed 003: one page of a queue's jobs by status, read live from Redis under a timeout."""
    shim, denied = _guard(request)
    if denied:
        return _reply(denied, request)
    status = request.query.get("status", "waiting")
    if status not in redis_jobs.STATUSES:
        return respond(fail(400, "INVALID_PARAMETER", "status must be one of active, waiting, failed, completed"))
    limit = _int_param(request, "limit", 50, 1, redis_jobs.MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    for value in (limit, offset):
        if isinstance(value, tuple):
            return respond(value)
    assert isinstance(limit, int) and isinstance(offset, int)
    name = request.match_info["queue_name"]
    v = view(request, shim)
    row = next((r for r in queue_rows(v) if r["name"] == name), None)
    target = _locate(request, v, name) if row is not None else None
    if target is None:
        return respond(fail(404, "NOT_FOUND", f"Queue {name!r} not found"))
    source, layout, tenant = target
    try:
        async with asyncio.timeout(shim.jobs_timeout):
            jobs, total = await redis_jobs.list_jobs(source.client, layout, tenant, name, status, limit, offset)
    except (TimeoutError, OSError, RedisError) as err:  # a dead or slow backend: 503, never a crash
        log.warning("job listing failed", extra={"queue": name, "error": type(err).__name__})
        return respond(fail(503, "BACKEND_UNAVAILABLE", "The queue backend did not answer in time"))
    return respond(ok({"jobs": jobs, "pagination": {"total": total, "limit": limit, "offset": offset}}))


def _locate(request: web.Request, v: View, name: str) -> tuple[Any, Any, str] | None:
    """The Redis source, layout and tenant that hold queue `name` in this system."""
    from exporter.sources.redis import RedisSource

    config = v.config.system(v.health.name if v.health else "")
    for rule in config.queues if config else []:
        source = next((s for s in request.app[SCHEDULER].sources if s.name == rule.source), None)
        if not isinstance(source, RedisSource):
            continue
        records = matching_queues(v.snapshot.reading(rule.source), name, rule.tenant)
        tenant = records[0].tenant if records else ("" if rule.tenant in ("", "*") else rule.tenant)
        held = source.layout_of(tenant, name)
        if held is not None and redis_jobs.supported(held):
            return source, held, tenant
        for layout in source.config.queues:
            if redis_jobs.serves(layout, name) and redis_jobs.supported(layout):
                return source, layout, tenant
    return None


@routes.get("/api/v1/platform/system/infrastructure/health")
async def get_infrastructure(request: web.Request) -> web.Response:
    """Seed 003: each service with response times, error rate, backlog, pool use and latency."""
    shim, denied = _guard(request)
    if denied:
        return _reply(denied, request)
    return respond(infrastructure(view(request, shim), shim))


@routes.get("/api/v1/platform/system/infrastructure/alerts")
async def get_alerts(request: web.Request) -> web.Response:
    """Seed 003: recent alerts, from Alertmanager when configured, else from the issue history."""
    shim, denied = _guard(request)
    if denied:
        return _reply(denied, request)
    hours = _int_param(request, "hours", 24, 1, 168)
    if isinstance(hours, tuple):
        return respond(hours)
    severity = request.query.get("severity")
    if severity is not None and severity not in SEVERITIES:
        return respond(fail(400, "INVALID_PARAMETER", "severity must be one of error, warning, info"))
    v = view(request, shim)
    if shim.alertmanager_url is None:
        return respond(ok({"alerts": own_alerts(v, hours, severity)}))
    url = shim.alertmanager_url.rstrip("/") + "/api/v2/alerts"
    try:
        timeout = aiohttp.ClientTimeout(total=shim.jobs_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as answer:
            answer.raise_for_status()
            raw = await answer.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as err:
        log.warning("alertmanager unreachable", extra={"error": type(err).__name__})
        return respond(fail(503, "ALERTMANAGER_UNAVAILABLE", "Alertmanager did not answer"))
    return respond(ok({"alerts": alertmanager_alerts(raw, hours, severity, v.now)}))
