"""The one small interface every source implements, its shared config fields and its errors."""

from __future__ import annotations

import importlib
import math
import re
import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, GetCoreSchemaHandler, SecretStr, model_validator
from pydantic_core import CoreSchema, PydanticKnownError, core_schema

from exporter.model import JobPage, Reading, Snapshot
from exporter.redact import redact_url as redact_url  # re-exported: sources import it from here
from exporter.redact import split_userinfo as split_userinfo

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> Any:
    """Accept `15`, `15s`, `500ms`, `2m`, `1h`; numbers are seconds, and finite (`.inf` never comes round)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"a duration must be a finite number of seconds, got {value}")
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 15s, 2m)")
        return float(match.group(1)) * _UNITS[match.group(2)]
    return value


MAX_DURATION = 366 * 86400.0  # a year: `.inf` or 1e300 seconds never comes round, so it is an error
DEFAULT_TIMEOUT = 5.0  # seconds; never more than the interval (SourceConfig._default_timeout)
MIN_INTERVAL = 0.25  # seconds between collections; `1ms` burned 57 % of a core for nothing

Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0, le=MAX_DURATION, allow_inf_nan=False)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


class Model(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def load(ref: str) -> Any:
    """`module:attr` (or `module:attr.attr`) -> that attribute, importing its module on first use: the
    one loader of the tables that name their members instead of importing them (`SOURCE_TYPES`,
    `LAYOUTS`, `SHIMS`)."""
    module, _, name = ref.partition(":")
    found: Any = importlib.import_module(module)
    for part in name.split("."):
        found = getattr(found, part)
    return found


@dataclass(frozen=True, eq=False)
class OwnValidators:
    """`Annotated[A | B | C, OwnValidators("tag")]`: a union of models told apart by the value of their
    field `tag` (one model without a tag: `Annotated[A, OwnValidators()]`), each value validated by its
    model's own validator, built when that model is first used (`defer_build`).
    `Annotated[Base, OwnValidators("tag", table)]`, `table` mapping each tag value to `module:Model`:
    the same, but a member is imported only when a config first names its tag, so a daemon never
    imports the modules of the source types and layouts it does not use (tests/unit/test_registries.py
    checks every entry); `Annotated[Base, OwnValidators(model="module:Model")]`, one model imported
    when a config first gives the value (a shim's section).

    Pydantic's discriminated union (`Field(discriminator=...)`) inlines every member's whole schema into
    the validator of the model holding it, built even for the members no config uses: the config's
    validator held every source type and layout (~190k characters of schema, megabytes of RSS). The
    errors are the union's own, at the same locations (pydantic prefixes the field's); a value is
    dumped as its own model. Compared and hashed by identity (`eq=False`): typing caches `Annotated[...]`
    by its metadata, and a frozen dataclass holding a dict (the table) could not be hashed."""

    tag: str | None = None
    table: Mapping[str, str] | None = None
    model: str | None = None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        members: tuple[type[BaseModel], ...] = get_args(source) or (source,)
        tag, table = self.tag, self.table
        models = _by_tag(members, tag) if tag and table is None else {}
        tags = list(table if table is not None else models)

        def model_of(value: Any) -> type[BaseModel] | None:
            if not isinstance(value, str):
                return None
            if table is not None:
                return load(table[value]) if value in table else None
            return models.get(value)

        def validate(value: Any) -> BaseModel:
            if isinstance(value, members):
                return value
            if tag is None:
                own: type[BaseModel] = load(self.model) if self.model is not None else members[0]
                return own.model_validate(value)
            if not isinstance(value, dict):
                raise PydanticKnownError("model_attributes_type")
            if tag not in value:
                raise PydanticKnownError("union_tag_not_found", {"discriminator": f"'{tag}'"})
            model = model_of(value[tag])
            if model is None:
                raise PydanticKnownError("union_tag_invalid", {
                    "discriminator": f"'{tag}'", "tag": str(value[tag]),
                    "expected_tags": ", ".join(f"'{t}'" for t in tags)})
            return model.model_validate(value)

        as_own = core_schema.wrap_serializer_function_ser_schema(lambda v, dump: dump(v),
                                                                 schema=core_schema.any_schema())
        return core_schema.no_info_plain_validator_function(validate, serialization=as_own)


def _by_tag(members: tuple[type[BaseModel], ...], tag: str) -> dict[str, type[BaseModel]]:
    """Each value of every member's `tag` Literal to its member (a member may take several values, as
    `Literal["a", "b"]`); a tag that is no Literal of strings, or a value two members claim, is an error
    of the code, raised when the schema is built (tests/unit/test_config_models.py builds them all)."""
    models: dict[str, type[BaseModel]] = {}
    for member in members:
        annotation = member.model_fields[tag].annotation
        values = get_args(annotation) if get_origin(annotation) is Literal else ()
        if not values or not all(isinstance(v, str) for v in values):
            raise TypeError(f"{member.__name__}.{tag} must be a Literal of strings to tell the union apart")
        for value in values:
            if value in models:
                raise TypeError(f"{models[value].__name__} and {member.__name__} both take {tag}={value!r}")
            models[value] = member
    return models


class SourceConfig(Model):
    """Fields every source has; each source module subclasses it with a literal `type`."""

    name: Name
    type: str
    interval: Duration = 15.0
    timeout: Duration = DEFAULT_TIMEOUT

    @model_validator(mode="before")
    @classmethod
    def _default_timeout(cls, data: Any) -> Any:
        """No `timeout`: 5 s, or the interval when that is shorter (as Prometheus derives an unset
        scrape_timeout), so `interval: 1s` alone is valid rather than refused for a timeout never set."""
        if isinstance(data, dict) and "timeout" not in data and "interval" in data:
            try:
                interval = float(parse_duration(data["interval"]))
            except (TypeError, ValueError):
                return data  # the interval's own error names it
            if 0 < interval < DEFAULT_TIMEOUT:
                return {**data, "timeout": interval}
        return data

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> SourceConfig:
        if self.timeout > self.interval:
            raise ValueError(f"timeout ({self.timeout}s) must not exceed interval ({self.interval}s)")
        return self


def read_secret(value: SecretStr | None, path: str | Path | None) -> str | None:
    """The secret given inline (from the environment) or read from `*_file`, never both."""
    if value is not None:
        return value.get_secret_value()
    if path is not None:
        return Path(path).read_text().strip()
    return None


def check_one_secret(model: BaseModel, field: str) -> None:
    """`field` and `field_file` are alternatives; the file must exist when the config loads."""
    inline, path = getattr(model, field), getattr(model, f"{field}_file")
    if inline is not None and path is not None:
        raise ValueError(f"give either {field} or {field}_file, not both")
    if path is not None and not Path(path).is_file():
        raise ValueError(f"{field}_file {str(path)!r} is not a readable file")


@dataclass(frozen=True, slots=True)
class MetricDef:
    """One metric a source exports: the single source of truth for its name, help and labels.

    `labels` excludes `source`, which every source metric carries first.
    """

    name: str
    help: str
    labels: tuple[str, ...] = ()
    type: str = "gauge"


class SourceError(Exception):
    """A collection failed; `kind` becomes a fixed label value, the message goes to the log."""

    kind: ClassVar[str] = "error"


class SourceUnreachable(SourceError):
    """The backend could not be reached or dropped the connection."""

    kind = "unreachable"


class SourceNameUnresolved(SourceError):
    """The backend's host name did not resolve: the DNS server hung or said no (the scheduler tells it
    from `unreachable` by the lookups that failed during the collection)."""

    kind = "dns"


class SourceTLSFailed(SourceUnreachable):
    """The backend's certificate failed verification (unknown CA, wrong name, expired): a certificate
    or CA to fix, not a network to wait for, so it is a kind of its own."""

    kind = "tls"


def unreachable(message: str, err: BaseException) -> SourceUnreachable:
    """SourceUnreachable for `err`, or SourceTLSFailed when a certificate check failed anywhere in its
    chain (client libraries wrap ssl's error in their own connection errors)."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return SourceTLSFailed(f"{message} (certificate verification failed: {cause.verify_message})")
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return SourceUnreachable(message)


class SourceDenied(SourceError):
    """The backend refused the exporter's credentials or a read it needs."""

    kind = "denied"


class SourceTimeout(SourceError):
    """The backend accepted the connection but did not answer in time (a hung or overloaded server)."""

    kind = "timeout"


class NotFound(SourceError):
    """The backend has no such object (a stream, consumer, bucket or message deleted since it was listed)."""

    kind = "not_found"


class QueryFailed(SourceError):
    """One statement or read failed on the server; only its query or check is affected, not the collection."""

    kind = "query_failed"

    def __init__(self, message: str, duration: float = 0.0) -> None:
        super().__init__(message)
        self.duration = duration


JOB_STATES = ("active", "waiting", "failed", "completed")
MAX_JOB_PAGE = 100


@dataclass
class Retained:
    """Counts a backend keeps per worker (or consumer), summed so that they never go down when one goes away.

    RQ keeps successful/failed counts in the worker's own hash, which expires with the worker; a NATS
    consumer's ack floor goes with the consumer. The sum over the live ones would drop each time one
    exits (and Prometheus would read the drop as a reset, counting the rest again); instead the last
    counts seen of one that is gone (or that restarted: a count went down) move into `gone`, and the
    total is gone + live. It is a counter that starts with the exporter (a restart is a counter reset, which
    rate() handles); jobs a worker finished after the last collection before it vanished are missed.
    """

    seen: dict[str, tuple[float, ...]] = field(default_factory=dict)
    gone: tuple[float, ...] = ()

    def total(self, live: dict[str, tuple[float, ...]], width: int) -> tuple[float, ...]:
        gone = list(self.gone or (0.0,) * width)
        for name, last in self.seen.items():
            now = live.get(name)
            if now is None or any(n < v for n, v in zip(now, last, strict=True)):
                gone = [g + v for g, v in zip(gone, last, strict=True)]
        self.seen = dict(live)
        self.gone = tuple(gone)
        return tuple(g + sum(v[i] for v in live.values()) for i, g in enumerate(gone))


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What a source may know of the rest of the daemon: the current snapshot, read-only."""

    snapshot: Callable[[], Snapshot]
    shard: tuple[int, int] = (0, 1)


class Source(ABC):
    """One backend connection. It knows its backend and nothing about HTTP or Prometheus.

    `collect()` returns a `Reading` or raises; the scheduler times it, bounds it with the
    configured timeout and turns failures into `jobqueue_source_up 0`.
    """

    backend: ClassVar[str]
    config_model: ClassVar[type[SourceConfig]]
    metrics: ClassVar[tuple[MetricDef, ...]] = ()

    def __init__(self, config: SourceConfig, context: SourceContext) -> None:
        self.config = config
        self.context = context

    @property
    def name(self) -> str:
        return self.config.name

    @abstractmethod
    async def collect(self) -> Reading:
        """Read the backend once and return what was seen."""

    async def list_jobs(self, queue: str, state: str, limit: int, offset: int, tenant: str = "") -> JobPage | None:
        """One page of a queue's jobs in `state` (one of JOB_STATES), read live and read-only; None when
        this source does not hold the queue or cannot list its jobs. Failures raise SourceError kinds;
        the caller bounds the read with its own timeout."""
        return None

    async def close(self) -> None:  # noqa: B027 - most sources hold nothing to release
        """Release connections; called once at shutdown."""
