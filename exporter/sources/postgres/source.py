"""PostgreSQL source (asyncpg): queue presets, operator SQL checks, migrations, connection use.

A collection is: `SELECT 1` (latency), then concurrently over a pool of at most `pool_size`
connections: the tenants query when due, one grouped statement per queue preset, each check that
is due, the migrations when due and the connection count. Every statement runs in
`BEGIN READ ONLY` with its own `SET LOCAL statement_timeout` (the built-in ones also without
parallel workers), on sessions that also have
`default_transaction_read_only=on` and `application_name=jobqueue-exporter`. A lost connection
fails the whole collection (unreachable: no stale values); a failing statement (timeout,
permission denied, a column that is not there) fails only its own query or check, which then
exports `up 0` and no values while the rest is exported as usual.

`Reading.details` keys:
  postgres     {dsn (without password), server_version, latency_ms}
  latency_ms   round trip of the ping, in milliseconds (the seeds' `latency_ms`)
  connections  {in_use, max, usage_percent, by_state: {state: n}}  (when `connections` is on)
  checks       {name: {check, severity (warn|info|null), count (rows returned), rows ([{column: value}],
               at most max_rows), error (null or text), observed_at (Unix seconds of the run)}}
  schema       {table_exists, applied: [{filename}], required: [{filename}], missing: [name], ok}
               (when `migrations` is configured)
  tenants      [tenant id as text]  (when `tenants_query` is configured; the last good list)
  queries      {name: {ok, error, duration_seconds}}: every built-in query (presets, migrations,
               connections, tenants); a library older than its preset supports fails that preset
               with an error naming the version it needs

Jobs finished within a preset's `finished_window` are the `jobqueue_jobs_finished_window` series;
with the default 3600 s window the `completed` count is also `QueueStats.completed_last_hour`
(seed 003), set in `fold_rows`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import asyncpg

from exporter.facts import PoolUse, QueryOutcome, Tenants
from exporter.model import QueueStats, Reading, Sample
from exporter.sources.base import (
    MetricDef,
    QueryFailed,
    Source,
    SourceContext,
    SourceDenied,
    SourceError,
    read_secret,
    unreachable,
)
from exporter.sources.postgres.checks import (
    CheckResult,
    Connections,
    SchemaResult,
    check_result,
    check_samples,
    compare_migrations,
    read_connections,
    required_migrations,
)
from exporter.sources.postgres.config import Check, PostgresConfig, quote_ident, safe_dsn
from exporter.sources.postgres.presets import (
    FinishedWindow,
    Flow,
    PresetQuery,
    UnsupportedVersion,
    build,
    fold_flow,
    fold_pivot,
    fold_rows,
)

log = logging.getLogger("jobqueue.postgres")

CONNECTIONS_SQL = (
    "SELECT state, count(*) AS n, current_setting('max_connections')::int AS max_connections "
    "FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY state"
)
# Errors that mean the server or the connection is gone: the whole collection fails as unreachable.
LOST: tuple[type[BaseException], ...] = (
    OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError, asyncpg.CrashShutdownError, asyncpg.TooManyConnectionsError,
)
# The built-in statements are short and run every cycle: a parallel plan costs more to start than it
# saves. pgmq over 500 never-analyzed queue tables (pgmq's autovacuum thresholds are never reached
# by a quiet queue) was planned as a Gather over a Parallel Append: the 500-branch plan serialized
# for the workers and two workers launched every cycle, 70-150 ms against 12-29 ms serial (issue 21).
# SET LOCAL, in the round trip of BEGIN, so it holds behind PgBouncer too.
SERIAL = "; SET LOCAL max_parallel_workers_per_gather = 0"
LOST_OR_TIMEOUT: tuple[type[BaseException], ...] = (*LOST, TimeoutError)
DENIED: tuple[type[BaseException], ...] = (
    asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError, asyncpg.InsufficientPrivilegeError,
)


class PostgresSource(Source):
    """Reads job tables, checks and server facts from one PostgreSQL database; never writes."""

    backend = "postgres"
    config_model = PostgresConfig
    metrics = (
        MetricDef("jobqueue_check_up", "1 if the operator SQL check ran and its result fit, else 0.", ("check",)),
        MetricDef("jobqueue_check_value", "Value column of an operator SQL check per row; `key` joins the row's "
                  "label columns with '/'.", ("check", "key")),
        MetricDef("jobqueue_check_rows", "Rows the operator SQL check returned (findings of a consistency check).",
                  ("check", "severity")),
        MetricDef("jobqueue_check_duration_seconds", "How long the last run of the SQL check took.", ("check",)),
        MetricDef("jobqueue_check_last_run_timestamp_seconds", "When the SQL check last ran (checks may run less "
                  "often than their source).", ("check",)),
        MetricDef("jobqueue_postgres_query_up", "1 if the source's built-in query (a queue preset, migrations, "
                  "connections, tenants) succeeded in the last collection, else 0.", ("query",)),
        MetricDef("jobqueue_postgres_query_duration_seconds", "How long the built-in query took.", ("query",)),
        MetricDef("jobqueue_postgres_connections", "Client connections of the PostgreSQL server by state "
                  "(pg_stat_activity).", ("state",)),
        MetricDef("jobqueue_postgres_max_connections", "The server's max_connections."),
        MetricDef("jobqueue_postgres_connections_used_ratio", "Client connections in use / max_connections."),
        MetricDef("jobqueue_schema_migrations", "Schema migrations: applied, required (files) and missing "
                  "(required but not applied).", ("state",)),
        MetricDef("jobqueue_schema_ok", "1 when every required migration is applied, else 0."),
        MetricDef("jobqueue_tenants", "Tenants the source currently reads."),
        MetricDef("jobqueue_jobs_finished_window", "Jobs of a library preset that finished within the last `window` "
                  "seconds, by outcome (completed, failed, cancelled), read through the library's own finished-at "
                  "index; absent where the library indexes no finish time.",
                  ("tenant", "queue", "outcome", "window")),
        MetricDef("jobqueue_postgres_schedulers", "Live processes that move due scheduled jobs to ready: River and "
                  "Oban an unexpired leader (0 or 1), Solid Queue dispatchers with a fresh heartbeat. 0 while "
                  "jobqueue_jobs{state=\"overdue\"} grows is a stalled scheduler.", ("query",)),
        MetricDef("jobqueue_postgres_tables_unanalyzed", "Tables (partitions) of 8 MB or more that a library preset "
                  "reads and that have never been analyzed (a fresh restore, autovacuum off): their plans guess and "
                  "may read the whole history. Run ANALYZE on them; `doctor` names them.", ("query",)),
    )

    def __init__(self, config: PostgresConfig, context: SourceContext, clock: Any = time.time) -> None:
        super().__init__(config, context)
        self.config: PostgresConfig = config
        self.clock = clock
        self.pool: asyncpg.Pool | None = None
        self.presets: list[PresetQuery] = [build(p) for p in config.queues]
        self.statement_timeout = config.statement_timeout or config.timeout
        # inside the source's timeout, so a server that hangs at connect or ping reads `unreachable` (as
        # documented) rather than the scheduler's `timeout`, which is kept for a collection that runs long
        self.connect_timeout = config.connect_timeout or config.timeout * 0.8
        self._checks: dict[str, CheckResult] = {}  # last run of each check, re-exported until due again
        self._schema: tuple[float, SchemaResult] | None = None
        self._tenants: list[str] | None = None
        self._tenants_at = -1e18
        self._failing: dict[str, str] = {}  # query or check -> error last logged
        self._resolved: dict[int, PresetQuery] = {}  # preset index -> statement built from its schema probe
        self._windows: dict[int, FinishedWindow] = {}  # preset index -> its finished window, read incrementally

    async def collect(self) -> Reading:
        try:
            return await self._collect()
        except DENIED as err:
            await self._forget()
            raise SourceDenied(f"postgres {safe_dsn(self.config.dsn)} refused the exporter: {err}") from err
        except asyncpg.InvalidCatalogNameError as err:
            await self._forget()
            raise SourceError(f"postgres {safe_dsn(self.config.dsn)}: {err}") from err
        except LOST_OR_TIMEOUT as err:
            await self._forget()
            reason = str(err) or type(err).__name__
            if isinstance(err, TimeoutError):
                reason = f"no answer within {self.connect_timeout:g}s (connect_timeout)"
            raise unreachable(f"postgres {safe_dsn(self.config.dsn)} unreachable: {reason}", err) from err
        except asyncpg.PostgresError as err:
            await self._forget()
            raise SourceError(f"postgres error: {err}") from err
        except asyncio.CancelledError:  # the scheduler's timeout: keep no cached result of this cycle
            self._checks.clear()
            self._schema = None
            self._windows.clear()
            raise

    async def _collect(self) -> Reading:
        pool = await self._pool()
        latency, version = await self._ping(pool)
        now = self.clock()
        tenants = self._tenants_due(now)
        checks = [c for c in self.config.checks if self._check_due(c, now)]
        schema_due = self.config.migrations is not None and (
            self._schema is None or now - self._schema[0] >= (self.config.migrations.interval or 0) - 0.001)
        results = await asyncio.gather(
            self._read_tenants() if tenants else _none(),
            asyncio.gather(*(self._preset(i, p) for i, p in enumerate(self.presets)), return_exceptions=True),
            asyncio.gather(*(self._check(c, now) for c in checks), return_exceptions=True),
            self._migrations() if schema_due else _none(),
            self._connections() if self.config.connections else _none(),
            return_exceptions=True,
        )
        flat = [r for part in results for r in (part if isinstance(part, list) else [part])]
        for item in flat:  # a lost connection anywhere fails the whole collection
            if isinstance(item, BaseException) and not isinstance(item, QueryFailed):
                raise item
        tenants_out, presets_out, checks_out, schema_out, conns_out = results
        return self._reading(latency, version, now, tenants_out, presets_out, checks_out, schema_out, conns_out)

    # --- building the reading -------------------------------------------------------------------

    def _reading(self, latency: float, version: str, now: float, tenants_out: Any, presets_out: Any,
                 checks_out: Any, schema_out: Any, conns_out: Any) -> Reading:
        samples: list[Sample] = []
        queries: dict[str, dict[str, Any]] = {}
        queues: list[QueueStats] = []
        facts: list[object] = []

        def record(name: str, outcome: Any) -> bool:
            ok = not isinstance(outcome, BaseException)
            duration = outcome[1] if ok else outcome.duration
            error = None if ok else str(outcome)
            queries[name] = {"ok": ok, "error": error, "duration_seconds": round(duration, 6)}
            facts.append(QueryOutcome(name, ok, error))
            samples.append(Sample("jobqueue_postgres_query_up", (name,), 1 if ok else 0))
            samples.append(Sample("jobqueue_postgres_query_duration_seconds", (name,), duration))
            self._log_change(f"query {name}", error)
            return ok

        details: dict[str, Any] = {
            "postgres": {"dsn": safe_dsn(self.config.dsn), "server_version": version,
                         "latency_ms": round(latency * 1000, 3)},
            "latency_ms": round(latency * 1000, 3),
        }
        if tenants_out is not None and record("tenants", tenants_out):
            self._tenants, self._tenants_at = tenants_out[0], now
        if self.config.tenants_query is not None and self._tenants is not None:
            details["tenants"] = list(self._tenants)
            facts.append(Tenants(tuple(self._tenants)))
            samples.append(Sample("jobqueue_tenants", (), len(self._tenants)))
        workers: dict[str, int] = {}
        slots: dict[str, int] = {}
        malformed = 0
        for preset, outcome in zip(self.presets, presets_out, strict=True):
            if record(preset.name, outcome):
                queues.extend(outcome[0])
                flow: Flow = outcome[2]
                malformed += flow.malformed
                for state, n in flow.workers.items():  # several presets of one database: summed, one series
                    workers[state] = workers.get(state, 0) + n
                for metric, count in (("jobqueue_worker_capacity", flow.capacity),
                                      ("jobqueue_worker_busy_slots", flow.busy_slots)):
                    if count is not None:
                        slots[metric] = slots.get(metric, 0) + count
                if flow.scheduler is not None:
                    samples.append(Sample("jobqueue_postgres_schedulers", (preset.name,), flow.scheduler))
                if flow.unanalyzed is not None:
                    samples.append(Sample("jobqueue_postgres_tables_unanalyzed", (preset.name,), flow.unanalyzed))
                for f in flow.finished:
                    window = f"{f['window_seconds']:g}s"
                    samples += [Sample("jobqueue_jobs_finished_window", (f["tenant"], f["queue"], o, window), n)
                                for o, n in f.items() if o not in ("query", "tenant", "queue", "window_seconds")]
        samples += [Sample("jobqueue_workers", ("", "", state), n) for state, n in sorted(workers.items())]
        samples += [Sample(metric, ("", ""), n) for metric, n in sorted(slots.items())]
        for result in checks_out:
            if isinstance(result, CheckResult):
                self._checks[result.name] = result
        checks: dict[str, Any] = {}
        for check in self.config.checks:
            result = self._checks.get(check.name)
            if result is None:
                continue
            checks[check.name] = result.details()
            facts.append(result.record())
            samples.extend(check_samples(result))
        details["checks"] = checks
        if schema_out is not None and record("migrations", schema_out):
            self._schema = (now, schema_out[0])
        elif schema_out is not None:
            self._schema = None
        if self._schema is not None:
            schema = self._schema[1]
            details["schema"] = schema.details()
            samples += [Sample("jobqueue_schema_migrations", ("applied",), len(schema.applied)),
                        Sample("jobqueue_schema_migrations", ("required",), len(schema.required)),
                        Sample("jobqueue_schema_migrations", ("missing",), len(schema.missing)),
                        Sample("jobqueue_schema_ok", (), 1 if schema.ok else 0)]
        if conns_out is not None and record("connections", conns_out):
            conns: Connections = conns_out[0]
            details["connections"] = conns.details()
            facts.append(PoolUse(conns.in_use, conns.max_connections))
            samples += [Sample("jobqueue_postgres_connections", (s,), n) for s, n in conns.by_state]
            samples += [Sample("jobqueue_postgres_max_connections", (), conns.max_connections),
                        Sample("jobqueue_postgres_connections_used_ratio", (), conns.ratio)]
        details["queries"] = queries
        return Reading(tuple(queues), tuple(samples), latency, malformed, details, tuple(facts))

    def _log_change(self, what: str, error: str | None) -> None:
        """Log a failing query once when it starts failing (and when its error changes), and its recovery."""
        before = self._failing.get(what)
        if error is not None and error != before:
            log.warning(f"{what} failed", extra={"source": self.name, "error": error})
            self._failing[what] = error
        elif error is None and before is not None:
            log.info(f"{what} recovered", extra={"source": self.name})
            del self._failing[what]

    # --- the parts of a collection --------------------------------------------------------------

    async def _preset(self, index: int, preset: PresetQuery) -> tuple[list[QueueStats], float, Flow]:
        probe_time = 0.0
        if preset.probe is not None:
            resolved = self._resolved.get(index)
            if resolved is None:
                resolved, probe_time = await self._probe(preset)
                self._resolved[index] = resolved
            preset = resolved
        window = self._windows.setdefault(index, FinishedWindow(preset.window)) if preset.window else None
        since = window.since() if window is not None else 0.0
        try:
            rows, duration = await self._statement(preset, (since,) if window is not None else preset.args)
        except QueryFailed:
            self._resolved.pop(index, None)  # a migration may have changed the schema: probe again
            if window is not None:
                window.reset()  # and read the whole window again
            raise
        duration += probe_time
        if preset.kind == "pivot":  # 10k tenants: fold off the event loop
            return await asyncio.to_thread(fold_pivot, preset, rows, self.context.shard), duration, Flow({}, None, [])
        if window is not None:
            rows = window.fold(rows, since)
        queues = fold_rows(preset, rows, self.context.shard)
        return queues, duration, fold_flow(preset, rows, queues)

    async def _statement(self, preset: PresetQuery, args: Sequence[Any]) -> tuple[list[Any], float]:
        """The preset's statement; one built from a listing (pgmq's queue tables) is listed first, and
        listed again once if a table went away between the two round trips."""
        if preset.listing is None or preset.expand is None:
            _, rows, duration = await self._query(preset.sql, args, preset.timeout)
            return rows, duration
        spent = 0.0
        for attempt in (1, 2):
            _, listed, duration = await self._query(preset.listing, (), preset.timeout)
            spent += duration
            try:
                _, rows, duration = await self._query(preset.expand(listed), args, preset.timeout)
            except QueryFailed as err:
                if attempt == 2 or not isinstance(err.__cause__, asyncpg.UndefinedTableError):
                    raise QueryFailed(str(err), spent + err.duration) from err
                spent += err.duration
                continue
            return rows, spent + duration
        raise AssertionError("unreachable")

    async def _probe(self, preset: PresetQuery) -> tuple[PresetQuery, float]:
        """Once per preset (again after a failure): the library's schema facts, checked against the
        minimum version, and the statement built for that schema."""
        assert preset.probe is not None
        try:
            _, rows, duration = await self._query(preset.probe, (), preset.timeout)
        except QueryFailed as err:
            if isinstance(err.__cause__, asyncpg.UndefinedTableError | asyncpg.UndefinedObjectError
                          | asyncpg.InvalidSchemaNameError):
                raise QueryFailed(f"{preset.name}: the library's tables are not there ({err}); is it installed "
                                  "and migrated in this schema?", err.duration) from err
            raise
        facts = dict(rows[0].items()) if rows else {}
        try:
            if preset.requires is not None:
                preset.requires(facts)
            resolved = preset.resolve(facts) if preset.resolve is not None else preset
        except UnsupportedVersion as err:
            raise QueryFailed(str(err), duration) from err
        return replace(resolved, probe=None, requires=None, resolve=None), duration

    async def _check(self, check: Check, now: float) -> CheckResult:
        try:
            columns, rows, duration = await self._query(check.sql, (), check.timeout, columns=True, parallel=True)
        except QueryFailed as err:
            result = CheckResult(check.name, check.severity, error=str(err), duration=err.duration, observed_at=now)
        else:
            result = check_result(check, columns, rows, duration, now)
        self._log_change(f"check {check.name}", result.error)
        return result

    async def _migrations(self) -> tuple[SchemaResult, float]:
        spec = self.config.migrations
        assert spec is not None
        try:
            required = await asyncio.to_thread(required_migrations, spec)
        except OSError as err:  # the directory went away after start: say so, never "nothing missing"
            raise QueryFailed(f"cannot read the migrations directory {spec.directory!r}: {err.strerror}") from err
        sql = f"SELECT {quote_ident(spec.column)}::text FROM {quote_ident(spec.table)}"
        try:
            _, rows, duration = await self._query(sql, (), None)
        except QueryFailed as err:
            if isinstance(err.__cause__, asyncpg.UndefinedTableError):
                return compare_migrations([], required, table_exists=False), err.duration
            raise
        return compare_migrations([r[0] for r in rows], required), duration

    async def _connections(self) -> tuple[Connections, float]:
        _, rows, duration = await self._query(CONNECTIONS_SQL, (), None)
        return read_connections(rows), duration

    async def _read_tenants(self) -> tuple[list[str], float]:
        _, rows, duration = await self._query(self.config.tenants_query or "", (), None)
        return sorted({str(r[0]) for r in rows if r[0] is not None and str(r[0])}), duration

    def _tenants_due(self, now: float) -> bool:
        return self.config.tenants_query is not None and (
            self._tenants is None or now - self._tenants_at >= self.config.tenants_refresh)

    def _check_due(self, check: Check, now: float) -> bool:
        last = self._checks.get(check.name)
        return last is None or check.interval is None or now - last.observed_at >= check.interval - 0.001

    # --- connections and statements -------------------------------------------------------------

    async def _pool(self) -> asyncpg.Pool:
        if self.pool is not None:
            return self.pool
        try:  # read at every (re)connection, so a rotated password file is picked up
            password = read_secret(self.config.password, self.config.password_file)
        except OSError as err:
            raise SourceError(f"cannot read password_file: {err.strerror}") from err
        pool = asyncpg.create_pool(
            self.config.dsn,
            password=password,
            ssl=self.config.tls.context() if self.config.tls is not None else None,  # else the dsn's sslmode
            min_size=1, max_size=self.config.pool_size, max_inactive_connection_lifetime=300.0,
            timeout=self.connect_timeout, statement_cache_size=self.config.statement_cache_size,
            # pgmq's statement over 500 queue tables is ~75 kB: above asyncpg's 15 kB default it would be
            # parsed and planned again every cycle (~0.7 s at 500 queues), not once per connection
            max_cacheable_statement_size=1024 * 1024,
            command_timeout=self.statement_timeout, reset=_reset,
            server_settings={"application_name": "jobqueue-exporter", "default_transaction_read_only": "on",
                             "statement_timeout": str(int(self.statement_timeout * 1000)), "TimeZone": "UTC",
                             # plan with the real status values, so a partial index on them is usable
                             "plan_cache_mode": "force_custom_plan",
                             # short statements repeated every cycle: compiling them (a plan's estimate
                             # crosses jit_above_cost with enough queues) costs 10x the statement itself
                             "jit": "off"},
        )
        try:
            await pool
        except BaseException:
            pool.terminate()
            raise
        self.pool = pool
        log.info("connected", extra={"source": self.name, "dsn": safe_dsn(self.config.dsn)})
        return pool

    async def _ping(self, pool: asyncpg.Pool) -> tuple[float, str]:
        """`SELECT 1`; a connection dropped since the last cycle (server restart) is replaced once."""
        for attempt in (1, 2):
            conn = await pool.acquire(timeout=self.connect_timeout)
            try:
                started = time.perf_counter()
                await conn.fetchval("SELECT 1", timeout=self.connect_timeout)
                latency = time.perf_counter() - started
                version = ".".join(str(v) for v in conn.get_server_version()[:2])
            except TimeoutError:
                # not released: a release waits for the hung server to take asyncpg's cancel request, which
                # would turn `unreachable` into the scheduler's `timeout`; collect() terminates the pool
                raise
            except (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, asyncpg.AdminShutdownError,
                    ConnectionResetError):
                await pool.release(conn)
                if attempt == 2:
                    raise
                await pool.expire_connections()
                continue
            await pool.release(conn)
            return latency, version
        raise AssertionError("unreachable")

    async def _query(self, sql: str, args: Sequence[Any], limit: float | None, columns: bool = False,
                     parallel: bool = False) -> tuple[list[str], list[asyncpg.Record], float]:
        """One statement in a read-only transaction under its own statement timeout.

        Raises QueryFailed for a server-side error of this statement, and lets connection errors through.
        `columns` asks for the result's column names even when it has no row (one more round trip).
        The exporter's own statements run without parallel workers (SERIAL); `parallel` keeps the
        server's settings (an operator's check may scan enough to gain from them).
        """
        assert self.pool is not None
        seconds = limit or self.statement_timeout
        started = time.perf_counter()
        names: list[str] = []
        async with self.pool.acquire() as conn:
            await conn.execute(f"BEGIN READ ONLY; SET LOCAL statement_timeout = {max(1, int(seconds * 1000))}"
                               + ("" if parallel else SERIAL))
            try:
                if columns:
                    stmt = await conn.prepare(sql, timeout=seconds + 1.0)
                    names = [a.name for a in stmt.get_attributes()]
                    rows = await stmt.fetch(*args, timeout=seconds + 1.0)
                else:
                    rows = await conn.fetch(sql, *args, timeout=seconds + 1.0)
            except asyncpg.PostgresError as err:
                if isinstance(err, LOST):
                    raise
                await _rollback(conn)
                raise _failed(err, seconds, time.perf_counter() - started) from err
            except TimeoutError as err:  # the server did not cancel in time: drop this connection
                conn.terminate()
                raise _failed(err, seconds, time.perf_counter() - started) from err
            except BaseException:
                conn.terminate()
                raise
            await _rollback(conn)
        return names, rows, time.perf_counter() - started

    async def _forget(self) -> None:
        """After a failed collection: drop connections and cached results, so nothing stale survives."""
        self._checks.clear()
        self._schema = None
        self._resolved.clear()
        self._windows.clear()
        if self.pool is not None:
            pool, self.pool = self.pool, None
            pool.terminate()

    async def close(self) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=2.0)
            except LOST_OR_TIMEOUT:
                pool.terminate()


def _failed(err: BaseException, seconds: float, duration: float) -> QueryFailed:
    if isinstance(err, asyncpg.QueryCanceledError | TimeoutError):
        text = f"statement timeout: no result within {seconds:g}s"
    elif isinstance(err, asyncpg.InsufficientPrivilegeError):
        text = f"permission denied: {err}"
    else:
        text = f"{type(err).__name__}: {err}"
    return QueryFailed(text, duration)


async def _rollback(conn: asyncpg.Connection) -> None:
    try:
        await conn.execute("ROLLBACK", timeout=2.0)
    except (asyncpg.PostgresError, TimeoutError):
        conn.terminate()


async def _reset(conn: asyncpg.Connection) -> None:
    """Pool reset: the exporter changes no session state, so only an open transaction is undone."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def _none() -> None:
    return None
