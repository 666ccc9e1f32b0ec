"""Config models for `systems` (health rules), `shims` (the seed endpoints) and `auth` (tokens).

Shape only; references between sections (a system naming a source, a shim naming a system) are
checked in `exporter/config.py`. A `Path` is a dotted path into a source's `Reading.details`
(`checks.backups.rows.0.total`): the shims and rules read other sources' facts through it, so a
new source needs no change here.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path as FilePath
from types import UnionType
from typing import Annotated, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from exporter.sources.base import Duration, Model, Name

DetailsPath = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")]
Severity = Literal["unhealthy", "degraded"]
_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class SourceRef:
    """Marks a config value that names a source (`SourceName`): `--check-config` finds every such value,
    at any depth of a shim's config, by this mark, so no code lists the shims' field names."""


SourceName = Annotated[Name, SourceRef()]


def source_refs(model: BaseModel, path: str = "") -> list[tuple[str, str]]:
    """(key path, source) of every `SourceName` value in `model`, its submodels, lists and dict values."""
    out: list[tuple[str, str]] = []
    for key, field in type(model).model_fields.items():
        marked = any(isinstance(m, SourceRef) for m in field.metadata)  # pydantic keeps a field's own marks here
        where = f"{path}{field.alias or key}"  # the key as written in the YAML (`schema`, not `schema_`)
        out += _refs(getattr(model, key), SourceName if marked else field.annotation, where)
    return out


def _refs(value: object, annotation: object, path: str) -> list[tuple[str, str]]:
    if isinstance(value, BaseModel):
        return source_refs(value, f"{path}.")
    if isinstance(value, str):
        return [(path, value)] if _names_a_source(annotation) else []
    inner = _inner(annotation)
    if isinstance(value, dict):
        return [ref for key, item in value.items() for ref in _refs(item, inner, f"{path}.{key}")]
    if isinstance(value, list | tuple):
        return [ref for i, item in enumerate(value) for ref in _refs(item, inner, f"{path}[{i}]")]
    return []


def _names_a_source(annotation: object) -> bool:
    if get_origin(annotation) is Annotated:
        base, *marks = get_args(annotation)
        return any(isinstance(m, SourceRef) for m in marks) or _names_a_source(base)
    return any(_names_a_source(arg) for arg in get_args(annotation)) if get_origin(annotation) in _UNIONS else False


def _inner(annotation: object) -> object:
    """The item type of a list or the value type of a dict annotation (through Optional and Annotated)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated or origin in _UNIONS:
        found = [_inner(arg) for arg in (args[:1] if origin is Annotated else args)]
        return next((f for f in found if f is not None), None)
    return args[-1] if origin in (list, tuple, dict) and args else None


_UNIONS = (Union, UnionType)


class Ref(Model):
    """A value in a source's details: `source` names the source, `path` the dotted key path."""

    source: SourceName
    path: DetailsPath


class QueueRule(Model):
    """Waiting and failure thresholds for queues of a source (healthy < warning <= x <= critical < ...)."""

    source: Name
    queue: str = "*"
    tenant: str = ""  # "" queues of no tenant, "*" every tenant (the worst one counts)
    priority: str = "normal"
    warning: Annotated[int, Field(ge=0)] = 100
    critical: Annotated[int, Field(ge=0)] = 1000
    failed_critical: Annotated[int, Field(ge=0)] = 10
    rising_polls: Annotated[int, Field(ge=0, le=100)] = 0  # 0 = off; N = rose over N consecutive polls

    @model_validator(mode="after")
    def _ordered(self) -> QueueRule:
        if self.warning > self.critical:
            raise ValueError(f"warning ({self.warning}) must not exceed critical ({self.critical})")
        return self


class WorkerRule(Model):
    """A background worker that must run every `interval`; stale past `factor` x interval."""

    name: Name
    source: Name
    last_run: DetailsPath  # Unix seconds or an ISO 8601 time
    interval: Duration
    factor: Annotated[float, Field(gt=1)] = 2.5
    state: DetailsPath | None = None  # "working"/"idle" (or true/false = working)


class StuckRule(Model):
    """Ready items waiting while the worker that drains them is idle."""

    source: Name
    ready: DetailsPath
    worker: Name
    # seed 004's "many ready items": its own example issue is "Queue stuck: 100 ready but worker idle", and
    # 100 waiting is where seed 003's queues stop being healthy; a handful ready beside an idle poller is normal
    min_ready: Annotated[int, Field(ge=1)] = 100


class ComponentRule(Model):
    """A component (or a list of them) whose status must be one of `ok`."""

    name: Name
    source: Name
    path: DetailsPath
    name_field: str = "hostname"
    status_field: str = "status"
    ok: list[str] = ["ok", "healthy", "up", "ready", "running", "true"]
    severity: Severity = "unhealthy"


class ShareRule(Model):
    """Too large a share of disabled items (`part` of `total`) degrades the system."""

    source: Name
    total: DetailsPath
    part: DetailsPath
    max_ratio: Annotated[float, Field(ge=0, le=1)] = 0.10
    label: str = "disabled"
    severity: Severity = "degraded"


class JobsRule(Model):
    """Jobs switched off (RUN_JOBS=false), never started, or paused."""

    source: Name
    enabled: DetailsPath | None = None
    started: DetailsPath | None = None
    paused: DetailsPath | None = None


class CheckRule(Model):
    """Consistency checks of a source (`details.checks`): warn degrades, info is only listed."""

    source: Name
    checks: list[str] | None = None  # None: every check of the source


class SystemConfig(Model):
    """One monitored system: what belongs to it and the rules that decide ok | degraded | unhealthy."""

    name: Name
    sources: list[Name] = []
    down: Severity = "unhealthy"  # what an unreachable source makes the system
    queues: list[QueueRule] = []
    workers: list[WorkerRule] = []
    stuck: list[StuckRule] = []
    components: list[ComponentRule] = []
    shares: list[ShareRule] = []
    jobs: JobsRule | None = None
    checks: list[CheckRule] = []
    quiet_hours: str | None = None  # "21:00-06:00": reported (inQuietHours), never silences a stale worker
    timezone: str = "UTC"

    @field_validator("quiet_hours")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None and not _WINDOW.match(value):
            raise ValueError(f"quiet_hours must be HH:MM-HH:MM, got {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown timezone {value!r}") from err
        return value

    def referenced_sources(self) -> list[tuple[str, str]]:
        """(key path, source name) of every source the system names, for cross-reference checks."""
        out = [(f"sources[{i}]", s) for i, s in enumerate(self.sources)]
        for field in ("queues", "workers", "stuck", "components", "shares", "checks"):
            out += [(f"{field}[{i}].source", r.source) for i, r in enumerate(getattr(self, field))]
        if self.jobs is not None:
            out.append(("jobs.source", self.jobs.source))
        return out


Role = Literal["viewer", "super_admin", "ops"]


class TokenConfig(Model):
    """A bearer token or API key with its roles; the secret itself never sits in the YAML in clear."""

    name: Name
    token: SecretStr | None = None  # normally `${ENV_VAR}`
    token_env: str | None = None
    token_file: FilePath | None = None
    sha256: str | None = None
    roles: list[Role] = []
    tenants: list[str] = []  # viewer of these tenants ("*" every tenant)
    permissions: list[str] = []  # API permissions, e.g. health:read

    @model_validator(mode="after")
    def _one_secret(self) -> TokenConfig:
        given = [k for k in ("token", "token_env", "token_file", "sha256") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of token, token_env, token_file, sha256 (got {given or 'none'})")
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", self.sha256):
            raise ValueError("sha256 must be 64 hex digits")
        if self.token_file is not None and not self.token_file.is_file():
            raise ValueError(f"token_file {str(self.token_file)!r} is not a readable file")
        return self

    def digest(self, environ: dict[str, str] | None = None) -> bytes | None:
        """SHA-256 of the secret, or None when its variable is unset or empty (the token is off)."""
        if self.sha256 is not None:
            return bytes.fromhex(self.sha256)
        if self.token is not None:
            secret = self.token.get_secret_value()
        elif self.token_file is not None:
            secret = self.token_file.read_text().strip()
        else:
            secret = (environ if environ is not None else dict(os.environ)).get(self.token_env or "", "").strip()
        return hashlib.sha256(secret.encode()).digest() if secret else None


class RateLimit(Model):
    """At most `requests` per `per` seconds per client (token bucket); past it, 429."""

    requests: Annotated[int, Field(ge=1)] = 60
    per: Duration = 60.0


class AuthConfig(Model):
    """Every credential the web layer accepts."""

    tokens: list[TokenConfig] = []

    @model_validator(mode="after")
    def _unique(self) -> AuthConfig:
        names = [t.name for t in self.tokens]
        if len(names) != len(set(names)):
            raise ValueError("two tokens share a name")
        return self


class Shim(Model):
    """Common to every shim: switched on in the config and bound to one system."""

    enabled: bool = True
    system: Name


class ShimsBase(Model):
    """The `shims:` section: one optional field per shim, made from the shim table of `exporter/web/shims/`
    (`ShimsConfig` there); an absent or disabled shim's paths answer 404."""

    def bound(self) -> list[tuple[str, Shim]]:
        """(key, shim) of every configured shim, in table order."""
        return [(key, s) for key in type(self).model_fields if isinstance(s := getattr(self, key), Shim)]

    def get(self, key: str) -> Shim | None:
        """The config of the shim `key`, or None when it is not configured."""
        value = getattr(self, key, None)
        return value if isinstance(value, Shim) else None

    def sources_of(self, shim: Shim) -> list[tuple[str, str]]:
        """(key path, source) of every source a shim names: its fields typed `SourceName`, at any depth."""
        return source_refs(shim)
