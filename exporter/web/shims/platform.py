"""Seed 003 (email platform's system-monitoring API): queues, one queue's jobs, infrastructure
health and alerts, in the {"success": true, "data": ...} envelope.

Errors use {"success": false, "error": {"code", "message"}}: 400 invalid parameters, 401 missing
or invalid token, 403 without the ops role, 404 unknown queue, 429 past the configured rate. The
jobs listing is the one live backend read (`Source.list_jobs`), under its own timeout;
when the backend does not answer in time it is a 503 (documented in the OpenAPI document).
"""

from __future__ import annotations

import asyncio
import logging
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from exporter.facts import PoolUse
from exporter.health.alertmanager import AlertsUnavailable, read_alerts
from exporter.health.config import RateLimit, Role, Shim
from exporter.health.data import matching_queues
from exporter.health.rules import INFO, UNHEALTHY, queue_level
from exporter.model import Job, JobPage
from exporter.sources.base import JOB_STATES, MAX_JOB_PAGE, Duration, Name, Source, SourceError
from exporter.values import as_time, iso
from exporter.web.auth import RateLimiter, presented
from exporter.web.keys import SCHEDULER
from exporter.web.schema import (
    ANY,
    BEARER,
    BOOL,
    INT,
    NUM,
    STR,
    answer,
    get_op,
    nullable,
    obj,
    query,
    ref,
)
from exporter.web.shims.base import SHIM_STATE, Reply, ShimDef, View, enabled, respond, system_sources, view

log = logging.getLogger("jobqueue.web.platform")
class PlatformShim(Shim):
    """Seed 003: queues, one queue's jobs (live read), infrastructure health and alerts."""

    role: Role = "ops"
    rate_limit: RateLimit = RateLimit.model_construct()
    jobs_timeout: Duration = 2.0
    alertmanager_url: str | None = None
    service_names: dict[Name, str] = {}  # source -> display name ("OLTP Database")


routes = web.RouteTableDef()


@dataclass(frozen=True)
class _Limiter:
    """The app's rate limiter with the `rate_limit` it was made from."""

    limit: RateLimit
    limiter: RateLimiter


def limiter(request: web.Request, shim: PlatformShim) -> RateLimiter:
    """The per-client rate limiter of the seed's 429 (60 a minute unless configured), one per app, made
    on the first request. A reload switches shims at once: one that changes `rate_limit` gets a new
    limiter (every client's bucket full), one that keeps it keeps the counts."""
    state = request.app[SHIM_STATE]
    found = state.get("platform")
    if not (isinstance(found, _Limiter) and found.limit == shim.rate_limit):
        found = state["platform"] = _Limiter(shim.rate_limit, RateLimiter(shim.rate_limit.requests,
                                                                          shim.rate_limit.per))
    return found.limiter


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
            pool = reading.fact(PoolUse)
            if pool is not None and pool.percent is not None:
                entry["connection_pool_usage_percent"] = pool.percent
            if reading.latency is not None:
                entry["query_latency_ms"] = round(reading.latency * 1000)
        if status == "down":
            entry["reason"] = state.status.error or "not collected yet"
        elif issues:
            entry["reason"] = "; ".join(i.text for i in issues)
        out.append(entry)
    return ok({"services": out})


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
    out: list[dict[str, Any]] = []
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
    caller = presented(request, ("authorization",))
    client = caller.credential.name if caller.credential else (request.remote or "unknown")
    if not limiter(request, shim).allow(client):
        return shim, fail(429, "RATE_LIMITED", "Rate limit exceeded")
    if caller.credential is None:
        return shim, fail(401, "UNAUTHORIZED", "Missing or invalid token")
    if shim.role not in caller.credential.roles:
        return shim, fail(403, "FORBIDDEN", "Ops role required")
    return shim, None


def _reply(reply: Reply, request: web.Request, shim: PlatformShim) -> web.Response:
    headers = None
    if reply[0] == 429:
        caller = presented(request, ("authorization",))
        client = caller.credential.name if caller.credential else (request.remote or "unknown")
        headers = {"Retry-After": str(limiter(request, shim).retry_after(client))}
    return respond(reply, headers)


@routes.get("/api/v1/platform/system/queues")
async def get_queues(request: web.Request) -> web.Response:
    """Seed 003: every background queue with active, waiting, completed, failed and a status."""
    shim, denied = _guard(request)
    if denied:
        return _reply(denied, request, shim)
    return respond(ok({"queues": queue_rows(await view(request, shim))}))


@routes.get("/api/v1/platform/system/queues/{queue_name}/jobs")
async def get_queue_jobs(request: web.Request) -> web.Response:
    """Seed 003: one page of a queue's jobs by status, read live from Redis under a timeout."""
    shim, denied = _guard(request)
    if denied:
        return _reply(denied, request, shim)
    status = request.query.get("status", "waiting")
    if status not in JOB_STATES:
        return respond(fail(400, "INVALID_PARAMETER", "status must be one of active, waiting, failed, completed"))
    limit = _int_param(request, "limit", 50, 1, MAX_JOB_PAGE)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    for value in (limit, offset):
        if isinstance(value, tuple):
            return respond(value)
    assert isinstance(limit, int) and isinstance(offset, int)
    name = request.match_info["queue_name"]
    v = await view(request, shim)
    page: JobPage | None = None
    if any(r["name"] == name for r in queue_rows(v)):
        try:
            async with asyncio.timeout(shim.jobs_timeout):
                page = await request.app[SCHEDULER].call(  # on the loop where the sources' connections live
                    _list_jobs(request.app[SCHEDULER].sources, v, name, status, limit, offset))
        except (TimeoutError, SourceError) as err:  # a dead or slow backend: 503, never a crash
            # No page for this one answer (a stall of a few seconds is no outage); the next collection
            # decides: when it fails too, the system reads unhealthy and JobQueueSourceDown pages.
            log.warning("job listing failed", extra={"queue": name, "error": type(err).__name__})
            return respond(fail(503, "BACKEND_UNAVAILABLE", "The queue backend did not answer in time"),
                           {"Retry-After": str(math.ceil(shim.jobs_timeout))})
    if page is None:
        return respond(fail(404, "NOT_FOUND", f"Queue {name!r} not found"))
    jobs = [job_body(job) for job in page.jobs]
    return respond(ok({"jobs": jobs, "pagination": {"total": page.total, "limit": limit, "offset": offset}}))


def job_body(job: Job) -> dict[str, Any]:
    """The seed's job shape."""
    error = {"message": job.error, "stack_trace": job.stack_trace} if job.error is not None else None
    return {"id": job.id, "queue": job.queue, "status": job.status, "payload": job.payload, "error": error,
            "attempts": job.attempts, "created_at": iso(job.created_at), "updated_at": iso(job.updated_at)}


async def _list_jobs(sources: Iterable[Source], v: View, name: str, status: str, limit: int,
                     offset: int) -> JobPage | None:
    """The page from the first source of the system's queue rules that holds queue `name`."""
    config = v.config.system(v.health.name if v.health else "")
    by_name = {s.name: s for s in sources}
    for rule in config.queues if config else []:
        source = by_name.get(rule.source)
        if source is None:
            continue
        records = matching_queues(v.snapshot.reading(rule.source), name, rule.tenant)
        tenant = records[0].tenant if records else ("" if rule.tenant in ("", "*") else rule.tenant)
        page = await source.list_jobs(name, status, limit, offset, tenant)
        if page is not None:
            return page
    return None


@routes.get("/api/v1/platform/system/infrastructure/health")
async def get_infrastructure(request: web.Request) -> web.Response:
    """Seed 003: each service with response times, error rate, backlog, pool use and latency."""
    shim, denied = _guard(request)
    if denied:
        return _reply(denied, request, shim)
    return respond(infrastructure(await view(request, shim), shim))


@routes.get("/api/v1/platform/system/infrastructure/alerts")
async def get_alerts(request: web.Request) -> web.Response:
    """Seed 003: recent alerts, from Alertmanager when configured, else from the issue history."""
    shim, denied = _guard(request)
    if denied:
        return _reply(denied, request, shim)
    hours = _int_param(request, "hours", 24, 1, 168)
    if isinstance(hours, tuple):
        return respond(hours)
    severity = request.query.get("severity")
    if severity is not None and severity not in SEVERITIES:
        return respond(fail(400, "INVALID_PARAMETER", "severity must be one of error, warning, info"))
    v = await view(request, shim)
    if shim.alertmanager_url is None:
        return respond(ok({"alerts": own_alerts(v, hours, severity)}))
    try:
        raw = await read_alerts(shim.alertmanager_url, shim.jobs_timeout)
    except AlertsUnavailable as err:
        log.warning("alertmanager unreachable", extra={"error": str(err)})
        return respond(fail(503, "ALERTMANAGER_UNAVAILABLE", "Alertmanager did not answer"))
    return respond(ok({"alerts": alertmanager_alerts(raw, hours, severity, v.now)}))


# --- what the rest of the daemon knows of this shim (exporter/web/shims/__init__.py) ---

def _envelope(ok: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    err = ref("EnvelopeError")
    out = {"200": answer("OK.", ref(ok)), "400": answer("Invalid parameters.", err),
           "401": answer("Missing or invalid token.", err), "403": answer("No ops role.", err),
           "404": answer("Unknown queue, or the shim is disabled.", {"anyOf": [err, ref("Error")]}),
           "429": answer("Rate limit exceeded.", err)}
    out.update(extra or {})
    return out


SCHEMAS: dict[str, Any] = {
    "EnvelopeError": obj({"success": {"const": False}, "error": obj({"code": STR, "message": STR})}),
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
}
PATHS: dict[str, Any] = {
    "/api/v1/platform/system/queues": get_op("Seed 003: background job queues.", _envelope("Queues"),
                                           "003 platform", BEARER),
    "/api/v1/platform/system/queues/{queue_name}/jobs": get_op(
        "Seed 003: jobs of one queue (live, read-only).",
        _envelope("Jobs", {"503": answer("The queue backend did not answer in time.", ref("EnvelopeError"))}),
        "003 platform", BEARER, [
            {"name": "queue_name", "in": "path", "required": True, "schema": STR},
            query("status", {"enum": ["active", "waiting", "failed", "completed"]}, "Default waiting."),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "Default 50, max 100."),
            query("offset", {"type": "integer", "minimum": 0}, "Pagination offset.")]),
    "/api/v1/platform/system/infrastructure/health": get_op("Seed 003: service health.", _envelope("Infrastructure"),
                                                          "003 platform", BEARER),
    "/api/v1/platform/system/infrastructure/alerts": get_op(
        "Seed 003: recent infrastructure alerts.",
        _envelope("Alerts", {"503": answer("The configured Alertmanager did not answer.", ref("EnvelopeError"))}),
        "003 platform", BEARER, [
            query("hours", {"type": "integer", "minimum": 1, "maximum": 168}, "Default 24, max 168."),
            query("severity", {"enum": ["error", "warning", "info"]}, "Only this severity.")]),
}
ENDPOINTS = (
    ("/api/v1/platform/system/queues", "Background job queues with their counts (token)."),
    ("/api/v1/platform/system/queues/{queue_name}/jobs", "The jobs of one queue, page by page (token)."),
    ("/api/v1/platform/system/infrastructure/health", "Health of the infrastructure services (token)."),
    ("/api/v1/platform/system/infrastructure/alerts", "Recent infrastructure alerts (token)."),
)

SHIM = ShimDef("platform", PlatformShim, routes, PATHS, SCHEMAS, ("bearer",),
               endpoints=ENDPOINTS)
