"""Config models of the `postgres` source: connection, queue presets, SQL checks, migrations.

Every table, schema and column name given here is an identifier the operator wrote in the config;
it is quoted (`quote_ident`) before it reaches SQL, and values such as status names travel as
query parameters. Nothing a request carries ever reaches SQL.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from exporter.sources.base import Duration, Model, Name, SourceConfig, check_one_secret, redact_url
from exporter.sources.tls import TlsConfig

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_IDENT_PART = re.compile(r'^(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")$')
Ident = Annotated[str, Field(min_length=1, max_length=200)]


def split_ident(name: str) -> list[str]:
    """`schema.table` -> ['schema', 'table']; quoted parts (`"My Table"`) keep their dots."""
    parts, current, quoted = [], "", False
    for ch in name:
        if ch == '"':
            quoted = not quoted
        if ch == "." and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    for part in parts:
        if not _IDENT_PART.match(part):
            raise ValueError(f"not an SQL identifier: {name!r}")
    return parts


def quote_ident(name: str) -> str:
    """A config identifier as SQL: every part double-quoted (so `Jobs` keeps its case), validated."""
    out = []
    for part in split_ident(name):
        bare = part[1:-1].replace('""', '"') if part.startswith('"') else part
        out.append('"' + bare.replace('"', '""') + '"')
    return ".".join(out)


def _ident(value: str | None) -> str | None:
    if value is not None:
        split_ident(value)
    return value


def safe_dsn(dsn: str) -> str:
    """The DSN as it may appear in logs: without a password or the query string."""
    return redact_url(dsn)


class Preset(Model):
    """Fields every queue preset shares."""

    name: Name | None = None  # names the preset's query in metrics and logs; default: the preset
    timeout: Duration | None = None  # statement timeout of the preset's query; default: the source's
    queues: list[str] = []  # queues always reported (depth 0 when they hold no row)

    @property
    def query_name(self) -> str:
        return self.name or self.preset  # type: ignore[attr-defined]  # every subclass has its literal `preset`


class GenericPreset(Preset):
    """A job table of your own: one row per job, a status column, an enqueue-time column."""

    preset: Literal["generic"]
    table: Ident
    status_column: Ident = "status"
    waiting: list[str] = Field(min_length=1)  # values that mean waiting (ready): depth and oldest
    processing: list[str] = []
    failed: list[str] = []
    other: list[str] = []  # further values counted in jobqueue_jobs{state} only (e.g. completed)
    enqueued_column: Ident = "created_at"
    enqueued_unit: Literal["timestamp", "s", "ms"] = "timestamp"
    queue_column: Ident | None = None
    queue: str = "default"  # the queue label when there is no queue column
    tenant_column: Ident | None = None
    updated_column: Ident | None = None  # with stale_after: processing rows not updated since
    stale_after: Duration | None = None

    @field_validator("table", "status_column", "enqueued_column", "queue_column", "tenant_column", "updated_column")
    @classmethod
    def _idents(cls, value: str | None) -> str | None:
        return _ident(value)

    @model_validator(mode="after")
    def _states(self) -> GenericPreset:
        values = [*self.waiting, *self.processing, *self.failed, *self.other]
        if len(values) != len(set(values)):
            raise ValueError("a status value is listed twice among waiting/processing/failed/other")
        if (self.stale_after is None) != (self.updated_column is None):
            raise ValueError("give both updated_column and stale_after, or neither")
        return self


class PgmqPreset(Preset):
    """pgmq: every queue of `pgmq.meta`, its `q_<queue>` table read in one statement (visible = `vt <= now()`)."""

    preset: Literal["pgmq"]
    schema_: Ident = Field("pgmq", alias="schema")


class Finished(Preset):
    """Finished jobs: counted over a recent window through the library's finished-at index, never the history.

    `finished_window` (default 1h; null turns it off) counts jobs finished within it by outcome;
    `count_finished` also counts every retained finished job per state (a scan of the history:
    off by default, for small tables only).
    """

    finished_window: Duration | None = 3600.0
    count_finished: bool = False


class Overdue(Preset):
    """Scheduled jobs that a leader/stager/dispatcher process moves to ready: `overdue` past this grace."""

    overdue_after: Duration = 60.0


class PgBossPreset(Finished):
    """pg-boss 10+ (schema version >= 21): live jobs of `pgboss.job` grouped by name and state."""

    preset: Literal["pg-boss"]
    schema_: Ident = Field("pgboss", alias="schema")


class GraphileWorkerPreset(Preset):
    """graphile-worker >= 0.16: the `graphile_worker.jobs` view, only the columns needed."""

    preset: Literal["graphile-worker"]
    schema_: Ident = Field("graphile_worker", alias="schema")
    queue_by: Literal["task", "queue_name"] = "task"  # label `queue` with the task or the named queue


class InSchema(Preset):
    """A preset whose tables live in one schema, `public` unless the library was told otherwise."""

    schema_: Ident = Field("public", alias="schema")


class RiverPreset(InSchema, Finished, Overdue):
    """River: `river_job` grouped by queue and state; pauses from `river_queue`."""

    preset: Literal["river"]


class ObanPreset(InSchema, Finished, Overdue):
    """Oban: `oban_jobs` grouped by queue and state (schema = the Oban prefix)."""

    preset: Literal["oban"]


class GoodJobPreset(InSchema, Finished):
    """good_job: `good_jobs` with the states of its scopes (queued, running, scheduled, ...)."""

    preset: Literal["good_job"]


class ProcrastinatePreset(InSchema):
    """Procrastinate: `procrastinate_jobs` by queue and status, enqueue time from its events."""

    preset: Literal["procrastinate"]
    count_finished: bool = False  # procrastinate indexes no finish time: no window, only this full count


class SolidQueuePreset(InSchema, Overdue):
    """Solid Queue: ready/scheduled/claimed/blocked/failed executions; pauses."""

    preset: Literal["solid_queue"]
    finished_window: Duration | None = 3600.0  # finished jobs by `solid_queue_jobs.finished_at` (its own index)


AnyPreset = Annotated[
    GenericPreset | PgmqPreset | PgBossPreset | GraphileWorkerPreset | RiverPreset | ObanPreset | GoodJobPreset
    | ProcrastinatePreset | SolidQueuePreset,
    Field(discriminator="preset"),
]


class Check(Model):
    """An operator's SQL check: rows become `jobqueue_check_value{check,key}` and `details.checks`.

    `value` names the numeric column; `labels` the columns joined (with `/`) into the `key` label.
    Without `value` only the row count is exported (a consistency check: rows are findings).
    """

    name: Name
    sql: str = Field(min_length=1)
    value: str | None = None
    labels: list[str] = []
    severity: Literal["warn", "info"] | None = None  # set for consistency checks (the health layer)
    interval: Duration | None = None  # default: every collection of the source
    timeout: Duration | None = None  # default: the source's statement timeout
    max_rows: Annotated[int, Field(ge=0, le=10000)] = 100  # rows kept in details (the count is exact)

    @field_validator("sql")
    @classmethod
    def _one_statement(cls, value: str) -> str:
        if ";" in value.strip().rstrip(";"):
            raise ValueError("one SQL statement per check (no `;` inside)")
        return value.strip().rstrip(";")


class Migrations(Model):
    """Applied migrations (a table's column) against required ones (files in a directory)."""

    table: Ident = "schema_migrations"
    column: Ident = "filename"
    directory: str
    pattern: str = "*.sql"
    strip_suffix: bool = False  # compare `001_init` with a file `001_init.sql`
    interval: Duration | None = None

    @field_validator("table", "column")
    @classmethod
    def _idents(cls, value: str) -> str | None:
        return _ident(value)

    @field_validator("directory")
    @classmethod
    def _directory(cls, value: str) -> str:
        if not Path(value).is_dir():
            raise ValueError(f"directory {value!r} does not exist")
        return value


class PostgresConfig(SourceConfig):
    """One PostgreSQL database: queue presets, SQL checks, migrations, connection use."""

    type: Literal["postgres"]
    dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres"  # libpq's sslmode/sslrootcert/sslcert/sslkey work
    tls: TlsConfig | None = None  # the same as a `tls:` block (verify-full; insecure: encrypt only)
    password: SecretStr | None = None
    password_file: Path | None = None
    pool_size: Annotated[int, Field(ge=1, le=10)] = 2
    connect_timeout: Duration | None = None  # default: 0.8 x the source timeout (a hung server: unreachable)
    statement_timeout: Duration | None = None  # default: the source timeout
    statement_cache_size: Annotated[int, Field(ge=0)] = 100  # 0 behind PgBouncer (transaction pooling)
    connections: bool = True  # connection use: pg_stat_activity against max_connections
    tenants_query: str | None = None  # `SELECT id FROM tenants`: first column, as text
    tenants_refresh: Duration = 60.0
    queues: list[AnyPreset] = []
    checks: list[Check] = []
    migrations: Migrations | None = None

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("postgres", "postgresql"):
            raise ValueError("dsn must start with postgresql://")
        if parts.password is not None or "password=" in parts.query.lower():
            raise ValueError("dsn must not hold the password: use password (${PGPASSWORD}) or password_file")
        params = dict(parse_qsl(parts.query))
        mode = params.get("sslmode")
        if mode is not None and mode not in SSLMODES:
            raise ValueError(f"sslmode must be one of {', '.join(SSLMODES)}, got {mode!r}")
        for key in ("sslrootcert", "sslcert", "sslkey"):
            if key in params and not Path(params[key]).is_file():
                raise ValueError(f"{key} {params[key]!r} is not a readable file")
        return value

    @model_validator(mode="after")
    def _checks(self) -> PostgresConfig:
        check_one_secret(self, "password")
        given = sorted(k for k in dict(parse_qsl(urlsplit(self.dsn).query)) if k.startswith("ssl"))
        if self.tls is not None and given:
            raise ValueError(f"give TLS settings either in the dsn ({', '.join(given)}) or under tls, not both")
        names = [c.name for c in self.checks]
        if len(names) != len(set(names)):
            raise ValueError("two checks have the same name")
        queries = [q.query_name for q in self.queues]
        if len(queries) != len(set(queries)):
            raise ValueError("two queue presets have the same name: set `name` on one of them")
        _no_overlap(self.queues)
        for label, value in (("connect_timeout", self.connect_timeout), ("statement_timeout", self.statement_timeout),
                             *((f"checks.{c.name}.timeout", c.timeout) for c in self.checks)):
            if value is not None and value > self.timeout:
                raise ValueError(f"{label} ({value}s) must not exceed the source timeout ({self.timeout}s)")
        return self


def _no_overlap(presets: list[AnyPreset]) -> None:
    """Refuse two presets that report one (tenant, queue) as far as the config tells (a generic table
    without a queue column reports its `queue`; every preset reports its `queues`): the series would be
    emitted twice. Overlaps only known from the data are counted at run time (jobqueue_series_collisions)."""
    claimed: dict[tuple[bool, str], str] = {}
    for preset in presets:
        per_tenant = getattr(preset, "tenant_column", None) is not None
        names = set(preset.queues)
        if isinstance(preset, GenericPreset) and preset.queue_column is None:
            names.add(preset.queue)
        for queue in sorted(names):
            first = claimed.setdefault((per_tenant, queue), preset.query_name)
            if first != preset.query_name:
                raise ValueError(f"queue presets {first!r} and {preset.query_name!r} both report queue {queue!r}: "
                                 "give one a `queue` (or `queue_column`) of its own, or read the two apps from "
                                 "two sources")
