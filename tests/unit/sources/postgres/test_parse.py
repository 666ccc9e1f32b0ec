"""Pure parts of the postgres source on literal inputs: config rules, identifiers, folding, checks."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from exporter.config import ConfigError, parse_config
from exporter.model import QueueStats
from exporter.sources.postgres.checks import (
    check_result,
    compare_migrations,
    jsonable,
    read_connections,
    required_migrations,
)
from exporter.sources.postgres.config import Check, GenericPreset, Migrations, quote_ident, safe_dsn
from exporter.sources.postgres.presets import PresetQuery, build, fold_flow, fold_pivot, fold_rows, in_shard


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
    """No userinfo (issue 20 item 9) and no query string (asyncpg reads `?password=` too) reach logs or JSON."""
    assert safe_dsn("postgresql://u:pw@h:5433/db?sslmode=require") == "postgresql://***@h:5433/db"
    assert safe_dsn("postgresql://u@h/db?password=hunter2") == "postgresql://***@h/db"
    assert safe_dsn("postgresql://u@h/db") == "postgresql://***@h/db"
    assert safe_dsn("postgresql://u@[::1]:5432/db") == "postgresql://***@[::1]:5432/db"


def generic(**kw: object) -> PresetQuery:
    fields = {"preset": "generic", "table": "jobs", "waiting": ["new"], "processing": ["run"], "failed": ["bad"],
              "other": ["done"], **kw}
    return build(GenericPreset.model_validate(fields))


def test_generic_sql_pivots_states_and_uses_parameters() -> None:
    q = generic(queue_column="queue", tenant_column="tenant_id", updated_column="touched", stale_after="5m")
    assert q.sql == (
        'WITH g AS (SELECT "tenant_id" AS t, "queue" AS q, "status" AS s, count(*)::int AS n, '
        'min("created_at") AS oldest, (count(*) FILTER (WHERE "touched" < now() - make_interval(secs => $2)))::int '
        'AS stale FROM "jobs" '
        'WHERE "status" = ANY($1) GROUP BY "tenant_id", "queue", "status") '
        "SELECT t::text AS tenant, q::text AS queue, "
        "extract(epoch FROM min(oldest) FILTER (WHERE s = ANY($3)))::float8 AS oldest, "
        "coalesce(sum(stale) FILTER (WHERE s = ANY($4)), 0) AS stale, "
        "coalesce(sum(n) FILTER (WHERE s = ANY($3)), 0) AS depth, "
        "coalesce(sum(n) FILTER (WHERE s = ANY($5)), 0) AS failed, "
        "coalesce(sum(n) FILTER (WHERE s = $6), 0), coalesce(sum(n) FILTER (WHERE s = $7), 0), "
        "coalesce(sum(n) FILTER (WHERE s = $8), 0), coalesce(sum(n) FILTER (WHERE s = $9), 0) "
        "FROM g GROUP BY t, q ORDER BY t, q"
    )
    assert q.args == (["new", "run", "bad", "done"], 300.0, ["new"], ["run"], ["bad"], "new", "run", "bad", "done")
    plain = generic(enqueued_unit="ms", queue="mail", failed=[])
    assert plain.args == (["new", "run", "done"], "mail", ["new"], ["run"], "new", "run", "done")
    assert "(min(oldest) FILTER (WHERE s = ANY($3)))::float8 / 1000.0 AS oldest" in plain.sql
    assert "'' AS t, $2::text AS q" in plain.sql and 'GROUP BY "status")' in plain.sql
    assert "NULL::bigint AS failed" in plain.sql


def test_fold_pivot_one_row_per_queue() -> None:
    q = generic(queue_column="queue", tenant_column="t", updated_column="u", stale_after=60)
    rows = [("acme", "mail", 100.0, 1, 3, 1, 3, 2, 1, 0), ("beta", "mail", None, 0, 0, 0, 0, 1, 0, 7)]
    assert fold_pivot(q, rows) == [
        QueueStats("mail", 3, "acme", 100.0, (("new", 3), ("run", 2), ("bad", 1), ("done", 0), ("stale", 1)), 1),
        QueueStats("mail", 0, "beta", None, (("new", 0), ("run", 1), ("bad", 0), ("done", 7), ("stale", 0)), 0),
    ]
    spare = generic(queues=["spare"], failed=[])
    assert fold_pivot(spare, [("", "default", 5.0, 0, 1, None, 1, 0, 0)]) == [
        QueueStats("default", 1, "", 5.0, (("new", 1), ("run", 0), ("done", 0)), None),
        QueueStats("spare", 0, "", None, (("new", 0), ("run", 0), ("done", 0)), None),
    ]


def test_fold_rows_sums_states_and_keeps_oldest_waiting() -> None:
    q = PresetQuery("lib", "", (), ("new", "run", "bad"), frozenset({"new"}), frozenset({"bad"}))
    rows = [("", "mail", "new", 3, 100.0, 0), ("", "mail", "new", 1, 90.0, 0), ("", "mail", "bad", 1, 10.0, 0),
            ("", "pdf", "run", 2, 5.0, 0), ("", "mail", "weird", 4, 1.0, 0)]
    assert fold_rows(q, rows) == [
        QueueStats("mail", 4, "", 90.0, (("new", 4), ("run", 0), ("bad", 1), ("weird", 4)), 1),
        QueueStats("pdf", 0, "", None, (("new", 0), ("run", 2), ("bad", 0)), 0),
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


def test_folds_keep_this_replicas_tenants() -> None:
    q = generic(tenant_column="t")
    rows = [(f"t{i}", "default", 1.0, 0, 1, 0, 1, 0, 0, 0) for i in range(100)]
    mine = {s.tenant for s in fold_pivot(q, rows, (1, 3))}
    assert mine == {f"t{i}" for i in range(100) if in_shard(f"t{i}", (1, 3))}
    assert 15 < len(mine) < 50
    assert sum(len(fold_pivot(q, rows, (i, 3))) for i in range(3)) == 100
    lib = PresetQuery("lib", "", (), ("new",), frozenset({"new"}), None)
    assert {s.tenant for s in fold_rows(lib, [(t, "q", "new", 1, 1.0, 0) for t, *_ in rows], (1, 3))} == mine


def test_fold_flow_workers_schedulers_and_window() -> None:
    q = PresetQuery("lib", "", (), ("ready",), frozenset({"ready"}), None, window=600.0,
                    outcomes=("completed", "failed"), workers=("busy", "idle"), scheduler=True)
    rows = [("", "a", "ready", 2, 5.0, 0), ("", "a", "_done_completed", 3, None, 0),
            ("", "b", "_done_failed", 1, None, 0), ("", "", "_workers_busy", 2, None, 0),
            ("", "", "_scheduler", 1, None, 0)]
    queues = fold_rows(q, rows)
    assert queues == [QueueStats("a", 2, "", 5.0, (("ready", 2),)), QueueStats("b", 0, "", None, (("ready", 0),))]
    # a 600 s window is not the last hour: no completed_last_hour; with 3600 s it is the `completed` count, and
    # the queue seen only by the window (b) is still one queue
    hour = fold_rows(replace(q, window=3600.0), rows)
    assert [(s.queue, s.completed_last_hour) for s in hour] == [("a", 3), ("b", 0)]
    blind = fold_rows(replace(q, window=3600.0, outcomes=("failed", "cancelled")), rows)  # Oban: no completions
    assert [(s.queue, s.completed_last_hour) for s in blind] == [("a", None), ("b", None)]
    flow = fold_flow(q, rows, queues)
    assert (flow.workers, flow.scheduler) == ({"busy": 2, "idle": 0}, 1)
    assert flow.finished == [
        {"query": "lib", "tenant": "", "queue": "a", "window_seconds": 600.0, "completed": 3, "failed": 0},
        {"query": "lib", "tenant": "", "queue": "b", "window_seconds": 600.0, "completed": 0, "failed": 1}]
    none = fold_flow(PresetQuery("x", "", (), (), frozenset(), None), rows, queues)
    assert (none.workers, none.scheduler, none.finished) == ({"busy": 2}, None, [])


def test_finished_window_and_grace_config() -> None:
    river = parse_config(source("    queues:\n      - {preset: river, finished_window: null, overdue_after: 5m}"),
                         env={}).sources[0].queues[0]
    assert (river.finished_window, river.count_finished, river.overdue_after) == (None, False, 300.0)
    with pytest.raises(ConfigError, match="finished_window: unknown key"):
        parse_config(source("    queues:\n      - {preset: pgmq, finished_window: 1h}"), env={})


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


def test_two_presets_reporting_one_queue_are_refused() -> None:
    """Two job tables of two apps, each without a queue column: both would report queue `default`."""
    head = "sources:\n  - name: pg\n    type: postgres\n    dsn: postgresql://postgres@127.0.0.1:5432/test\n"
    two = ("    queues:\n      - {preset: generic, table: shop_jobs, waiting: [new]}\n"
           "      - {preset: generic, name: billing, table: billing_jobs, waiting: [new]}\n")
    with pytest.raises(ConfigError) as err:
        parse_config(head + two, "c.yaml", {})
    assert err.value.lines() == [
        "c.yaml:2: sources[0]: queue presets 'generic' and 'billing' both report queue 'default': give one a "
        "`queue` (or `queue_column`) of its own, or read the two apps from two sources"]
    apart = two.replace("table: billing_jobs,", "table: billing_jobs, queue: billing,")
    assert len(parse_config(head + apart, "c.yaml", {}).sources[0].queues) == 2  # type: ignore[union-attr]
    listed = ("    queues:\n      - {preset: generic, table: a, waiting: [new], queue_column: q, queues: [mail]}\n"
              "      - {preset: pg-boss, queues: [mail]}\n")
    with pytest.raises(ConfigError, match="'generic' and 'pg-boss' both report queue 'mail'"):
        parse_config(head + listed, "c.yaml", {})
