"""Pure parts of the postgres source on literal inputs: config rules, identifiers, folding, checks."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from pathlib import Path

import pytest

from exporter.config import ConfigError, parse_config
from exporter.model import QueueStats
from exporter.sources.postgres_checks import (
    check_result,
    compare_migrations,
    jsonable,
    read_connections,
    required_migrations,
)
from exporter.sources.postgres_config import Check, GenericPreset, Migrations, PgmqPreset, quote_ident, safe_dsn
from exporter.sources.postgres_presets import PresetQuery, build, fold_pgmq, fold_rows, in_shard


def source(extra: str) -> str:
    return f"""
sources:
  - name: pg
    type: postgres
    dsn: postgresql://exporter@127.0.0.1:5432/app
{extra}
"""


def test_minimal_config_defaults() -> None:
    pg = parse_config(source(""), env={}).sources[0]
    assert (pg.pool_size, pg.interval, pg.timeout, pg.connections, pg.statement_cache_size) == (2, 15.0, 5.0, True, 100)
    assert (pg.queues, pg.checks, pg.migrations, pg.tenants_query) == ([], [], None, None)


def test_password_in_dsn_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(source("").replace("exporter@", "exporter:secret@"), env={})
    assert "must not hold the password" in str(err.value)
    assert "secret" not in str(err.value)


def test_password_from_environment(tmp_path: Path) -> None:
    pg = parse_config(source("    password: ${PGPASSWORD}"), env={"PGPASSWORD": "s3cret"}).sources[0]
    assert pg.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(pg)
    secret = tmp_path / "pw"
    secret.write_text("x\n")
    both = f"    password: ${{PGPASSWORD}}\n    password_file: {secret}"
    with pytest.raises(ConfigError, match="either password or password_file"):
        parse_config(source(both), env={"PGPASSWORD": "s3cret"})


@pytest.mark.parametrize(("extra", "message"), [
    ("    pool_size: 0", "greater than or equal to 1"),
    ("    statement_timeout: 10s", "must not exceed the source timeout"),
    ("    checks:\n      - {name: a, sql: SELECT 1; DROP TABLE x}", "one SQL statement per check"),
    ("    checks:\n      - {name: a, sql: SELECT 1}\n      - {name: a, sql: SELECT 2}", "same name"),
    ("    checks:\n      - {name: a, sql: SELECT 1, severity: critical}", "severity"),
    ("    queues:\n      - {preset: generic, table: 'jobs; drop', waiting: [new]}", "not an SQL identifier"),
    ("    queues:\n      - {preset: generic, table: jobs, waiting: [a], failed: [a]}", "listed twice"),
    ("    queues:\n      - {preset: generic, table: jobs, waiting: [a], stale_after: 5m}", "updated_column"),
    ("    queues:\n      - {preset: pgmq}\n      - {preset: pgmq}", "same name"),
    ("    queues:\n      - {preset: kue}", "preset"),
    ("    migrations: {directory: /nonexistent/dir}", "does not exist"),
    ("    tables: []", "unknown key"),
])
def test_config_errors(extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(source(extra), env={})
    assert message in str(err.value)


def test_quote_ident() -> None:
    assert quote_ident("jobs") == '"jobs"'
    assert quote_ident("app.Jobs") == '"app"."Jobs"'
    assert quote_ident('"my.schema"."my ""table"""') == '"my.schema"."my ""table"""'
    for bad in ("jobs;", "a b", "x.", "1jobs", "a.b--"):
        with pytest.raises(ValueError):
            quote_ident(bad)


def test_safe_dsn() -> None:
    assert safe_dsn("postgresql://u:pw@h:5433/db?sslmode=require") == "postgresql://u:***@h:5433/db?sslmode=require"
    assert safe_dsn("postgresql://u@h/db") == "postgresql://u@h/db"


def generic(**kw: object) -> PresetQuery:
    fields = {"preset": "generic", "table": "jobs", "waiting": ["new"], "processing": ["run"], "failed": ["bad"],
              "other": ["done"], **kw}
    return build(GenericPreset.model_validate(fields))


def test_generic_sql_uses_parameters_for_values() -> None:
    q = generic(queue_column="queue", tenant_column="tenant_id", updated_column="touched", stale_after="5m")
    assert q.sql == (
        'SELECT "tenant_id"::text AS tenant, "queue"::text AS queue, "status"::text AS state, count(*) AS n, '
        'extract(epoch FROM min("created_at"))::float8 AS oldest, count(*) FILTER (WHERE "touched" < '
        'now() - make_interval(secs => $2::float8)) AS stale FROM "jobs" WHERE "status" = ANY($1) GROUP BY 1, 2, 3'
    )
    assert q.args == (["new", "run", "bad", "done"], 300.0)
    plain = generic(enqueued_unit="ms", queue="mail")
    assert plain.args == (["new", "run", "bad", "done"], "mail")
    assert "min(\"created_at\")::float8 / 1000.0" in plain.sql and "$2::text AS queue" in plain.sql


def test_fold_rows_sums_states_zero_fills_and_keeps_oldest_waiting() -> None:
    q = generic(queue_column="queue", tenant_column="t", updated_column="u", stale_after=60)
    rows = [
        ("acme", "mail", "new", 3, 100.0, 0), ("acme", "mail", "run", 2, 50.0, 1), ("acme", "mail", "bad", 1, 10.0, 0),
        ("beta", "mail", "done", 7, 5.0, 0), ("acme", "mail", "weird", 4, 1.0, 0),
    ]
    assert fold_rows(q, rows) == [
        QueueStats("mail", 3, "acme", 100.0, (("new", 3), ("run", 2), ("bad", 1), ("done", 0), ("weird", 4),
                                               ("stale", 1)), 1),
        QueueStats("mail", 0, "beta", None, (("new", 0), ("run", 0), ("bad", 0), ("done", 7), ("stale", 0)), 0),
    ]


def test_fold_rows_pseudo_states_and_configured_queues() -> None:
    q = PresetQuery("river", "", (), ("available", "discarded"), frozenset({"available"}), frozenset({"discarded"}),
                    queues=("always",), pausable=True)
    rows = [("", "a", "available", 2, 9.5, 0), ("", "a", "_paused", 1, None, 0), ("", "b", "_paused", 0, None, 0),
            ("", "c", "_queue", 0, None, 0)]
    assert fold_rows(q, rows) == [
        QueueStats("a", 2, "", 9.5, (("available", 2), ("discarded", 0)), 0, None, True),
        QueueStats("always", 0, "", None, (("available", 0), ("discarded", 0)), 0, None, False),
        QueueStats("b", 0, "", None, (("available", 0), ("discarded", 0)), 0, None, False),
        QueueStats("c", 0, "", None, (("available", 0), ("discarded", 0)), 0, None, False),
    ]


def test_fold_rows_keeps_this_replicas_tenants() -> None:
    q = generic(tenant_column="t")
    rows = [(f"t{i}", "default", "new", 1, 1.0, 0) for i in range(100)]
    mine = {s.tenant for s in fold_rows(q, rows, (1, 3))}
    assert mine == {f"t{i}" for i in range(100) if in_shard(f"t{i}", (1, 3))}
    assert 15 < len(mine) < 50
    assert sum(len(fold_rows(q, rows, (i, 3))) for i in range(3)) == 100


def test_fold_pgmq_visible_is_depth() -> None:
    q = build(PgmqPreset.model_validate({"preset": "pgmq", "queues": ["empty"]}))
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = [
        {"queue_name": "a", "queue_length": 5, "queue_visible_length": 3, "oldest_msg_age_sec": 60, "scrape_time": at},
        {"queue_name": "old", "queue_length": 2, "oldest_msg_age_sec": 10, "scrape_time": at},  # pgmq < 1.5
        {"queue_name": "busy", "queue_length": 1, "queue_visible_length": 0, "oldest_msg_age_sec": 9,
         "scrape_time": at},
    ]
    assert fold_pgmq(q, rows) == [
        QueueStats("a", 3, "", at.timestamp() - 60, (("visible", 3), ("invisible", 2))),
        QueueStats("busy", 0, "", None, (("visible", 0), ("invisible", 1))),
        QueueStats("empty", 0, "", None, (("visible", 0), ("invisible", 0))),
        QueueStats("old", 2, "", at.timestamp() - 10, (("visible", 2), ("invisible", 0))),
    ]


def check(**kw: object) -> Check:
    return Check.model_validate({"name": "c", "sql": "SELECT 1", **kw})


def test_check_values_keys_and_rows() -> None:
    c = check(value="n", labels=["tenant", "status"], severity="warn", max_rows=1)
    result = check_result(c, ["tenant", "status", "n"], [("a", "new", 2), ("a", None, decimal.Decimal("1.5"))])
    assert result.values == (("a/new", 2.0), ("a/", 1.5))
    assert result.count == 2 and result.error is None
    assert result.details() == {"check": "c", "severity": "warn", "count": 2, "observed_at": 0.0,
                                "rows": [{"tenant": "a", "status": "new", "n": 2}], "error": None}


def test_check_without_value_counts_rows() -> None:
    result = check_result(check(severity="info"), ["file_name"], [("a.mp4",), ("b.mp4",)])
    assert (result.values, result.count, result.rows) == ((), 2, ({"file_name": "a.mp4"}, {"file_name": "b.mp4"}))


@pytest.mark.parametrize(("kw", "columns", "rows", "error"), [
    ({"value": "n"}, ["count"], [(1,)], "column 'n' not in the result (columns: count)"),
    ({"value": "n", "labels": ["q"]}, ["n"], [], "column 'q' not in the result (columns: n)"),
    ({"value": "n"}, ["n"], [("abc",)], "column 'n' is not a number in row 1: 'abc'"),
    ({"value": "n", "labels": ["q"]}, ["q", "n"], [("a", 1), ("b", 2), ("a", 3)],
     "rows 1 and 3 have the same labels ('a'): make the label columns unique"),
])
def test_check_errors(kw: dict[str, object], columns: list[str], rows: list[tuple[object, ...]], error: str) -> None:
    result = check_result(check(**kw), columns, rows)
    assert (result.error, result.values, result.rows, result.ok) == (error, (), (), False)


def test_check_null_value_is_skipped_but_row_kept() -> None:
    result = check_result(check(value="n"), ["n"], [(None,)])
    assert (result.values, result.count, result.rows) == ((), 1, ({"n": None},))


def test_jsonable() -> None:
    u = uuid.UUID(int=1)
    assert jsonable({"a": [dt.datetime(2026, 1, 1, tzinfo=dt.UTC), decimal.Decimal("2"), u, b"\x01", float("nan"),
                           dt.timedelta(seconds=3)]}) == {
        "a": ["2026-01-01T00:00:00+00:00", 2, str(u), "01", None, 3.0]}


def test_migrations(tmp_path: Path) -> None:
    for name in ("001_init.sql", "002_users.sql", "notes.txt"):
        (tmp_path / name).write_text("")
    spec = Migrations(directory=str(tmp_path))
    assert required_migrations(spec) == ["001_init.sql", "002_users.sql"]
    assert required_migrations(Migrations(directory=str(tmp_path), strip_suffix=True)) == ["001_init", "002_users"]
    result = compare_migrations(["001_init.sql", None, "000_legacy.sql"], required_migrations(spec))
    assert (result.ok, result.missing) == (False, ("002_users.sql",))
    assert result.applied == ("000_legacy.sql", "001_init.sql")
    assert result.details() == {"table_exists": True, "ok": False, "missing": ["002_users.sql"],
                                "applied": [{"filename": "000_legacy.sql"}, {"filename": "001_init.sql"}],
                                "required": [{"filename": "001_init.sql"}, {"filename": "002_users.sql"}]}
    assert compare_migrations([], [], table_exists=False).ok is False
    assert compare_migrations(["a"], ["a"]).ok is True


def test_read_connections() -> None:
    conns = read_connections([("active", 3, 100), ("idle", 5, 100), (None, 2, 100)])
    assert (conns.in_use, conns.max_connections, conns.ratio) == (10, 100, 0.1)
    assert conns.details() == {"in_use": 10, "max": 100, "usage_percent": 10.0,
                               "by_state": {"active": 3, "idle": 5, "unknown": 2}}
