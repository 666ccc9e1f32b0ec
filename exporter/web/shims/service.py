"""Seed 002 (media service on PostgreSQL, Redis and a vector database): /health, /health/detailed,
/health/consistency.

Status rule of the seed: every service ok -> `ok`; any service in error (PostgreSQL and Redis
included) -> `degraded`, and the server still answers 200. /health is public; the other two need
a valid token or API key (401 {"error": "unauthorized"} otherwise).
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from pydantic import Field

from exporter import __version__
from exporter.facts import CheckRecord, HostResources, ProbeResult
from exporter.health.config import Ref, Shim, SourceName
from exporter.health.data import read
from exporter.health.rules import OK
from exporter.values import as_int, as_time, iso
from exporter.web.auth import presented
from exporter.web.schema import (
    ANY,
    BOOL,
    INT,
    NOT_FOUND,
    STR,
    answer,
    get_op,
    nullable,
    obj,
    ref,
)
from exporter.web.shims.base import Reply, ShimDef, View, enabled, respond, view


class ServiceShim(Shim):
    """Seed 002: /health, /health/detailed and /health/consistency of the media service."""

    version: str | None = None
    build_git_hash: str | None = None
    build_timestamp: str | None = None
    services: dict[str, SourceName] = {}  # name in the body -> source
    resources: SourceName | None = None  # a `system` source
    pipeline: Ref | None = None
    schema_: Ref | None = Field(None, alias="schema")
    identities: Ref | None = None
    identities_db_count: Ref | None = None  # e.g. a PostgreSQL check's count: adds db_count and synced
    integrations: dict[str, Ref] = {}
    config: dict[str, bool] = {}
    consistency: SourceName | None = None  # the source whose check facts (CheckRecord) are the consistency checks


routes = web.RouteTableDef()
UNAUTHORIZED: Reply = (401, {"error": "unauthorized"})


def services(v: View, shim: ServiceShim) -> dict[str, dict[str, Any]]:
    """ok / error (unreachable) / degraded (reachable, with issues), and the ping in milliseconds."""
    out: dict[str, dict[str, Any]] = {}
    for name, source in shim.services.items():
        state = v.snapshot.sources.get(source)
        if state is None or state.reading is None:
            out[name] = {"status": "error", "latency_ms": None}
            continue
        latency = state.reading.latency
        issues = v.health.issues_of(source) if v.health is not None else []
        # consistency findings are /health/consistency's business, not the service's; a check that cannot
        # run against it is the service's (what it feeds is unknown, never "ok")
        degraded = any(not i.id.startswith("check:") and i.severity != "info" for i in issues)
        probe = state.reading.fact(ProbeResult)  # an HTTP probe that answered, but wrongly
        status = "error" if probe is not None and not probe.ok else "degraded" if degraded else "ok"
        out[name] = {"status": status, "latency_ms": round(latency * 1000) if latency is not None else None}
    return out


def overall(v: View, shim: ServiceShim) -> str:
    """The seed's rule over the services; with none configured, the bound system's verdict."""
    if shim.services:
        return "ok" if all(s["status"] == "ok" for s in services(v, shim).values()) else "degraded"
    return "ok" if v.health is not None and v.health.status == OK else "degraded"


REVISION_ENV = "JOBQUEUE_EXPORTER_REVISION"  # the Dockerfile's REVISION build arg (OCI image.revision)
BUILD_TIMESTAMP_ENV = "JOBQUEUE_EXPORTER_BUILD_TIMESTAMP"  # its BUILD_DATE build arg (OCI image.created)


@functools.cache
def _installed_commit() -> str | None:
    """The commit pip recorded when it installed the exporter from git (PEP 610 direct_url.json)."""
    try:
        text = importlib.metadata.distribution("jobqueue-exporter").read_text("direct_url.json")
        commit = json.loads(text or "{}").get("vcs_info", {}).get("commit_id")
    except (importlib.metadata.PackageNotFoundError, ValueError, AttributeError):
        return None
    return commit if isinstance(commit, str) and commit else None


def build_facts(environ: Mapping[str, str], configured: str, installed: str | None) -> tuple[str | None, str | None]:
    """(git hash, build time) as the build recorded them, None when it did not: never the start time or
    a placeholder (seed 002: "Git commit hash", "Binary build time").

    The container passes its build args (`docker build --build-arg REVISION=$(git rev-parse HEAD)
    --build-arg BUILD_DATE=$(date -u +%FT%TZ)`, also its OCI labels) as environment variables; a pip
    install from git records the commit; the config's `revision` is the operator's word for it."""
    commit = next((c for c in (environ.get(REVISION_ENV), installed, configured) if c and c != "unknown"), None)
    built = iso(as_time(environ.get(BUILD_TIMESTAMP_ENV, "").strip() or None))
    return commit, built


def basic(v: View, shim: ServiceShim) -> Reply:
    """The public /health body: status, version, build and uptime."""
    commit, built = build_facts(os.environ, v.config.revision, _installed_commit())
    return 200, {
        "status": overall(v, shim),
        "version": shim.version or __version__,
        "build_git_hash": shim.build_git_hash or commit,
        "build_timestamp": shim.build_timestamp or built,
        "uptime_ms": max(0, int((v.now - v.started_at) * 1000)),
    }


def _resources(v: View, shim: ServiceShim) -> dict[str, Any] | None:
    reading = v.snapshot.reading(shim.resources) if shim.resources else None
    if reading is None:
        return None
    host = reading.fact(HostResources)
    if host is None:  # not a `system` source: the seed's nulls
        return {"cpu_used_percent": None, "memory_available_mb": None, "memory_used_percent": None}
    return {"cpu_used_percent": round(host.cpu_percent, 1),
            "memory_available_mb": int(host.memory_available_bytes // 1048576),
            "memory_used_percent": round(host.memory_percent, 1)}


def _schema(value: Any) -> dict[str, Any] | None:
    """Migrations as the seed shows them: applied [{filename}], required [...], ok."""
    if not isinstance(value, dict):
        return None
    applied = [a if isinstance(a, dict) else {"filename": str(a)} for a in value.get("applied") or []]
    required = [r.get("filename") if isinstance(r, dict) else str(r) for r in value.get("required") or []]
    names = {a.get("filename") for a in applied}
    missing = [r for r in required if r not in names]
    ok = value.get("ok")
    return {"table_exists": bool(value.get("table_exists", True)), "applied": applied, "required": missing,
            "ok": ok if isinstance(ok, bool) else not missing}


def _block(v: View, ref: Ref | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    value = read(v.snapshot, ref.source, ref.path)
    return dict(value) if isinstance(value, dict) else None


def _identities(v: View, shim: ServiceShim) -> dict[str, Any] | None:
    """The files' identity block, with `db_count` and `synced` when a database count is configured."""
    block = _block(v, shim.identities)
    if block is None or shim.identities_db_count is None:
        return block
    db_count = as_int(read(v.snapshot, shim.identities_db_count.source, shim.identities_db_count.path))
    files = as_int(block.get("files_count"))
    return {**block, "db_count": db_count,
            "synced": db_count is not None and files is not None and files == db_count}


def detailed(v: View, shim: ServiceShim) -> Reply:
    """Services, resources, pipeline, schema, identities, integrations and runtime toggles."""
    return 200, {
        "status": overall(v, shim),
        "version": shim.version or __version__,
        "services": services(v, shim),
        "resources": _resources(v, shim),
        "pipeline": _block(v, shim.pipeline),
        "schema": _schema(_block(v, shim.schema_)),
        "identities": _identities(v, shim),
        "integrations": {name: _block(v, ref) for name, ref in shim.integrations.items()},
        "config": dict(shim.config),
    }


def consistency(v: View, shim: ServiceShim) -> Reply:
    """Each consistency check with severity, count and offending files; a warn with rows degrades."""
    state = v.snapshot.sources.get(shim.consistency) if shim.consistency else None
    if state is None or state.reading is None:
        return 200, {"status": "degraded", "checked_at": None, "checks": []}
    checks: list[dict[str, Any]] = [{"check": c.name, "severity": c.severity, "count": c.count, "files": [
        {"file_name": f.get("file_name"), "file_uuid": f.get("file_uuid"), "status": f.get("status"),
         "detail": f.get("detail")} for f in c.rows]} for c in state.reading.facts_of(CheckRecord)
        if c.severity is not None]
    failed = any(c.error for c in state.reading.facts_of(CheckRecord) if c.severity is not None)
    bad = failed or any(c["count"] > 0 and c["severity"] != "info" for c in checks)  # one that cannot run: unknown
    return 200, {"status": "degraded" if bad else "ok", "checked_at": iso(state.status.observed_at), "checks": checks}


@routes.get("/health")
async def get_health(request: web.Request) -> web.Response:
    """Seed 002: public basic health (status, version, build, uptime) for load balancers."""
    shim = enabled(request, "service", ServiceShim)
    return respond(basic(await view(request, shim), shim))


@routes.get("/health/detailed")
async def get_detailed(request: web.Request) -> web.Response:
    """Seed 002: services, resources, pipeline, schema, identities, integrations (authenticated)."""
    shim = enabled(request, "service", ServiceShim)
    if presented(request).credential is None:
        return respond(UNAUTHORIZED)
    return respond(detailed(await view(request, shim), shim))


@routes.get("/health/consistency")
async def get_consistency(request: web.Request) -> web.Response:
    """Seed 002: data consistency checks with severity, count and files (authenticated)."""
    shim = enabled(request, "service", ServiceShim)
    if presented(request).credential is None:
        return respond(UNAUTHORIZED)
    return respond(consistency(await view(request, shim), shim))


# --- what the rest of the daemon knows of this shim (exporter/web/shims/__init__.py) ---

SCHEMAS: dict[str, Any] = {
    "ServiceHealth": obj({"status": {"enum": ["ok", "degraded"]}, "version": STR,
                          "build_git_hash": nullable("string"), "build_timestamp": nullable("string"),
                          "uptime_ms": INT}),
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
}
PATHS: dict[str, Any] = {
    "/health": get_op("Seed 002: basic health for load balancers (public).", {
        "200": answer("ok or degraded.", ref("ServiceHealth")), "404": NOT_FOUND}, "002 service"),
    "/health/detailed": get_op("Seed 002: full system health.", {
        "200": answer("ok or degraded.", ref("ServiceDetailed")),
        "401": answer("Authentication required.", ref("Error")), "404": NOT_FOUND}, "002 service",
        [{"apiKey": []}, {"bearer": []}]),
    "/health/consistency": get_op("Seed 002: data consistency checks.", {
        "200": answer("Checks.", ref("Consistency")),
        "401": answer("Authentication required.", ref("Error")), "404": NOT_FOUND}, "002 service",
        [{"apiKey": []}, {"bearer": []}]),
}
ENDPOINTS = (
    ("/health", "Short health answer for load balancers (no credentials needed)."),
    ("/health/detailed", "Full health of the service and its dependencies (API key or token)."),
    ("/health/consistency", "Results of the data consistency checks (API key or token)."),
)

SHIM = ShimDef("service", ServiceShim, routes, PATHS, SCHEMAS, ("apiKey", "bearer"), endpoints=ENDPOINTS)
