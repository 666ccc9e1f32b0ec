"""Pure readers of SQL results: operator checks, applied-vs-required migrations, connection use.

Module-level and side-effect free (except `required_migrations`, which lists a directory), so they
are unit-tested on literal rows. A result that does not fit its check is an error of that check,
never a crash of the source nor a half-exported series.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.facts import CheckRecord
from exporter.model import Sample
from exporter.sources.postgres.config import Check, Migrations

KEY_SEP = "/"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One run of a check: values by key (label values joined), rows for details, or an error."""

    name: str
    severity: str | None
    values: tuple[tuple[str, float], ...] = ()
    rows: tuple[dict[str, Any], ...] = ()
    count: int = 0
    error: str | None = None
    duration: float = 0.0
    observed_at: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def record(self) -> CheckRecord:
        """The typed fact the health rules and the consistency shim read."""
        severity = self.severity if self.severity in ("warn", "info", "error", "critical") else None
        return CheckRecord(self.name, severity, self.count, self.rows, self.error)

    def details(self) -> dict[str, Any]:
        """The tree operator `Ref` paths reach into (`details.checks.<name>.rows.0.total`)."""
        return {"check": self.name, "severity": self.severity, "count": self.count, "rows": list(self.rows),
                "error": self.error, "observed_at": self.observed_at}


MAX_CELL = 4096  # characters of one text cell kept in a check's detail rows


def jsonable(value: Any) -> Any:
    """A database value as JSON: numbers stay numbers, times become ISO 8601, the rest text."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):  # a cell is untrusted: a 10 MB text column must not become a 10 MB answer
        return value if len(value) <= MAX_CELL else value[:MAX_CELL] + "…"
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():  # numeric 'NaN' / 'Infinity': int() would raise, JSON has no such number
            return None
        exact = value == value.to_integral_value() and abs(value) < 1 << 63
        return int(value) if exact else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float | decimal.Decimal):
        return float(value)
    return None


def check_result(check: Check, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                 duration: float = 0.0, observed_at: float = 0.0) -> CheckResult:
    """Turn a check's result set into values and detail rows, or into an error that says why."""
    def failed(reason: str) -> CheckResult:
        return CheckResult(check.name, check.severity, error=reason, duration=duration, observed_at=observed_at)

    wanted = [*([check.value] if check.value else []), *check.labels]
    missing = [c for c in wanted if c not in columns]
    if missing:
        return failed(f"column {', '.join(map(repr, missing))} not in the result (columns: {', '.join(columns)})")
    index = {c: i for i, c in enumerate(columns)}
    values: list[tuple[str, float]] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(rows, 1):
        if check.value:
            key = KEY_SEP.join("" if row[index[c]] is None else str(row[index[c]]) for c in check.labels)
            if key in seen:
                return failed(f"rows {seen[key]} and {n} have the same labels ({key!r}): "
                              "make the label columns unique")
            seen[key] = n
            raw = row[index[check.value]]
            if raw is None:
                continue
            number = _number(raw)
            if number is None:
                return failed(f"column {check.value!r} is not a number in row {n}: {str(raw)[:40]!r}")
            values.append((key, number))
    kept = tuple({c: jsonable(v) for c, v in zip(columns, row, strict=True)} for row in rows[: check.max_rows])
    return CheckResult(check.name, check.severity, tuple(values), kept, len(rows), None, duration, observed_at)


def check_samples(result: CheckResult) -> list[Sample]:
    """The metrics of one check result: up, rows, values (none when it failed), duration, last run."""
    name = result.name
    out = [Sample("jobqueue_check_up", (name,), 1 if result.ok else 0),
           Sample("jobqueue_check_duration_seconds", (name,), result.duration),
           Sample("jobqueue_check_last_run_timestamp_seconds", (name,), result.observed_at)]
    if result.ok:
        out.append(Sample("jobqueue_check_rows", (name, result.severity or ""), result.count))
        out += [Sample("jobqueue_check_value", (name, key), value) for key, value in result.values]
    return out


@dataclass(frozen=True, slots=True)
class SchemaResult:
    """Applied migrations against the required files."""

    table_exists: bool
    applied: tuple[str, ...]
    required: tuple[str, ...]
    missing: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.table_exists and not self.missing

    def details(self) -> dict[str, Any]:
        return {"table_exists": self.table_exists, "applied": [{"filename": n} for n in self.applied],
                "required": [{"filename": n} for n in self.required], "missing": list(self.missing), "ok": self.ok}


def required_migrations(spec: Migrations) -> list[str]:
    """Names of the migration files in the directory (suffix stripped when configured), sorted."""
    directory = Path(spec.directory)
    if not directory.is_dir():
        raise FileNotFoundError(2, "No such directory", str(directory))
    names = [p.name for p in directory.glob(spec.pattern) if p.is_file()]
    if spec.strip_suffix:
        names = [n.rsplit(".", 1)[0] if "." in n else n for n in names]
    return sorted(set(names))


def compare_migrations(applied: Sequence[str | None], required: Sequence[str],
                       table_exists: bool = True) -> SchemaResult:
    """Missing = required files that are not applied; applied names no file knows are fine (old files)."""
    done = sorted({a for a in applied if a})
    have = set(done)
    missing = tuple(r for r in required if r not in have)
    return SchemaResult(table_exists, tuple(done), tuple(required), missing)


@dataclass(frozen=True, slots=True)
class Connections:
    """Client connections of the whole server by state against max_connections."""

    by_state: tuple[tuple[str, int], ...]
    max_connections: int

    @property
    def in_use(self) -> int:
        return sum(n for _, n in self.by_state)

    @property
    def ratio(self) -> float:
        return self.in_use / self.max_connections if self.max_connections > 0 else 0.0

    def details(self) -> dict[str, Any]:
        return {"in_use": self.in_use, "max": self.max_connections, "usage_percent": round(self.ratio * 100, 1),
                "by_state": dict(self.by_state)}


def read_connections(rows: Sequence[Sequence[Any]]) -> Connections:
    """Rows `(state, n, max_connections)` of the connections query; a NULL state (hidden) is `unknown`."""
    counts: dict[str, int] = {}
    limit = 0
    for state, n, max_connections in rows:
        key = state or "unknown"
        counts[key] = counts.get(key, 0) + int(n)
        limit = int(max_connections)
    return Connections(tuple(sorted(counts.items())), limit)
