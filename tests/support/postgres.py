"""PostgreSQL for tests: a database of its own on the shared server, or a throwaway cluster.

`scratch_database` creates `jqtest_<random>` on the shared server (127.0.0.1:5432, user postgres,
trust) and drops it afterwards. `PgCluster` runs initdb/pg_ctl on a free port in a temporary
directory owned by the `postgres` user (as root, through `runuser`), so outage tests stop and
restart their own server and never the shared one.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from exporter.config import parse_config
from exporter.model import Reading, Snapshot
from exporter.sources.base import SourceContext
from exporter.sources.postgres import PostgresSource
from tests.support.servers import free_port, wait_for_port

SHARED = "postgresql://postgres@127.0.0.1:5432"


def admin(dsn: str = f"{SHARED}/postgres") -> psycopg.Connection:
    """An autocommit psycopg connection for setting up test data."""
    return psycopg.connect(dsn, autocommit=True)


@contextmanager
def scratch_database(base: str = SHARED, prefix: str = "jqtest") -> Iterator[str]:
    """A new empty database; yields its DSN and drops it (closing leftover sessions) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin(f"{base}/postgres") as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with admin(f"{base}/postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    return Path(found[-1]).parent


class PgCluster:
    """A PostgreSQL cluster of the test's own: start, stop (fast), restart, on a free port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bindir = _bindir()
        self.root = Path(tempfile.mkdtemp(prefix="jqpg-"))
        self.data = self.root / "data"
        self.database = "postgres"  # what dsn() connects to by default
        self.options = ""  # further `-c name=value` server options (e.g. ssl=on)
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self.root.chmod(0o700)

    @property
    def base(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def dsn(self, database: str | None = None) -> str:
        return f"{self.base}/{database or self.database}"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def init(self, password: str | None = None) -> PgCluster:
        """initdb; with `password`, TCP logins need it (scram-sha-256), the Unix socket stays trusted."""
        auth = ["--auth=trust"]
        if password is not None:
            pwfile = self.root / "pw"
            pwfile.write_text(password + "\n")
            if self.as_postgres:
                shutil.chown(pwfile, "postgres", "postgres")
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        self._run("initdb", "-D", str(self.data), "-U", "postgres", *auth, "-E", "UTF8", "--no-sync")
        return self

    def own(self, path: Path) -> Path:
        """A file the server reads (its key must belong to it and be private): copied into its directory."""
        target = self.root / path.name
        shutil.copy(path, target)
        target.chmod(0o600)
        if self.as_postgres:
            shutil.chown(target, "postgres", "postgres")
        return target

    def start(self) -> PgCluster:
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
                f"-c fsync=off -c max_connections=20 {self.options}")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", opts, "-w", "start")
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


async def collect(dsn: str, body: str, env: dict[str, str] | None = None) -> Reading:
    """Build a postgres source from YAML lines (indented 4 spaces), collect once, close it."""
    source = make_source(dsn, body, env)
    try:
        return await source.collect()
    finally:
        await source.close()


def make_source(dsn: str, body: str, env: dict[str, str] | None = None, name: str = "pg") -> PostgresSource:
    text = f"sources:\n  - name: {name}\n    type: postgres\n    dsn: {dsn}\n{body}"
    config = parse_config(text, "<test>", env or {})
    return PostgresSource(config.sources[0], SourceContext(snapshot=Snapshot))  # type: ignore[arg-type]


# Schemas as the libraries' own migrations define them (libraries not installable here), reduced
# to the columns and types the presets read plus the NOT NULL columns an insert needs, with the
# libraries' own indexes over those columns (the presets' plans depend on them) and the tables the
# presets' version probes read.
PGMQ = """
CREATE SCHEMA pgmq;
CREATE TABLE pgmq.meta (queue_name varchar UNIQUE NOT NULL, is_partitioned boolean NOT NULL,
    is_unlogged boolean NOT NULL, created_at timestamptz DEFAULT now() NOT NULL);
CREATE TYPE pgmq.metrics_result AS (queue_name text, queue_length bigint, newest_msg_age_sec int,
    oldest_msg_age_sec int, total_messages bigint, scrape_time timestamptz, queue_visible_length bigint);
CREATE FUNCTION pgmq.metrics(queue_name text) RETURNS pgmq.metrics_result AS $$
DECLARE
    result_row pgmq.metrics_result;
    query text;
    qtable text := 'q_' || queue_name;
BEGIN
    query := format($QUERY$
        WITH q_summary AS (
            SELECT count(*) AS queue_length,
                   count(CASE WHEN vt <= now() THEN 1 END) AS queue_visible_length,
                   extract(epoch FROM (now() - max(enqueued_at)))::int AS newest_msg_age_sec,
                   extract(epoch FROM (now() - min(enqueued_at)))::int AS oldest_msg_age_sec,
                   now() AS scrape_time
            FROM pgmq.%I),
        all_metrics AS (SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS total_messages FROM pgmq.%I)
        SELECT %L AS queue_name, q_summary.queue_length, q_summary.newest_msg_age_sec,
               q_summary.oldest_msg_age_sec, all_metrics.total_messages, q_summary.scrape_time,
               q_summary.queue_visible_length
        FROM q_summary, all_metrics
        $QUERY$, qtable, qtable || '_msg_id_seq', queue_name);
    EXECUTE query INTO result_row;
    RETURN result_row;
END;
$$ LANGUAGE plpgsql;
CREATE FUNCTION pgmq.metrics_all() RETURNS SETOF pgmq.metrics_result AS $$
DECLARE
    row_name record;
    result_row pgmq.metrics_result;
BEGIN
    FOR row_name IN SELECT queue_name FROM pgmq.meta LOOP
        result_row := pgmq.metrics(row_name.queue_name);
        RETURN NEXT result_row;
    END LOOP;
END;
$$ LANGUAGE plpgsql;
"""


def pgmq_queue(name: str) -> str:
    """What `pgmq.create(name)` creates: the q_ table (identity msg_id; the unquoted name folds to lower
    case, as pgmq.format_table_name lowers it) and its meta row."""
    return f"""
CREATE TABLE pgmq.q_{name} (msg_id bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY, read_ct int DEFAULT 0 NOT NULL,
    enqueued_at timestamptz DEFAULT now() NOT NULL, vt timestamptz NOT NULL, message jsonb, headers jsonb);
INSERT INTO pgmq.meta (queue_name, is_partitioned, is_unlogged) VALUES ('{name}', false, false);
"""


RIVER = """
CREATE TYPE {s}.river_job_state AS ENUM ('available', 'cancelled', 'completed', 'discarded', 'pending',
    'retryable', 'running', 'scheduled');
CREATE TABLE {s}.river_job (id bigserial PRIMARY KEY, args jsonb NOT NULL DEFAULT '{{}}',
    attempt smallint NOT NULL DEFAULT 0, attempted_at timestamptz, attempted_by text[],
    created_at timestamptz NOT NULL DEFAULT now(), errors jsonb[], finalized_at timestamptz,
    kind text NOT NULL, max_attempts smallint NOT NULL DEFAULT 25, metadata jsonb NOT NULL DEFAULT '{{}}',
    priority smallint NOT NULL DEFAULT 1, queue text NOT NULL DEFAULT 'default',
    state {s}.river_job_state NOT NULL DEFAULT 'available', scheduled_at timestamptz NOT NULL DEFAULT now(),
    tags varchar(255)[] NOT NULL DEFAULT '{{}}', unique_key bytea, unique_states bit(8));
CREATE TABLE {s}.river_queue (name text PRIMARY KEY NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
    metadata jsonb NOT NULL DEFAULT '{{}}', paused_at timestamptz, updated_at timestamptz NOT NULL DEFAULT now());
-- riverpgxv5/migration/main/002_initial_schema.up.sql: the indexes; 005: river_migration by line
CREATE INDEX river_job_state_and_finalized_at_index ON {s}.river_job USING btree(state, finalized_at)
    WHERE finalized_at IS NOT NULL;
CREATE INDEX river_job_prioritized_fetching_index ON {s}.river_job
    USING btree(state, queue, priority, scheduled_at, id);
CREATE UNLOGGED TABLE {s}.river_leader (elected_at timestamptz NOT NULL, expires_at timestamptz NOT NULL,
    leader_id text NOT NULL, name text PRIMARY KEY DEFAULT 'default');
CREATE TABLE {s}.river_migration (line text NOT NULL, version bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (line, version));
INSERT INTO {s}.river_migration (line, version) SELECT 'main', v FROM generate_series(1, 6) v;
"""

# River before migration 005: river_migration(id, created_at, version), versions 1..3 (no river_queue,
# no `pending` state): riverpgxv5/migration/main/001_create_river_migration.up.sql.
RIVER_003 = """
CREATE TABLE {s}.river_migration (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(),
    version bigint NOT NULL);
INSERT INTO {s}.river_migration (version) VALUES (1), (2), (3);
CREATE TABLE {s}.river_job (id bigserial PRIMARY KEY, queue text NOT NULL, state text NOT NULL);
"""

OBAN = """
CREATE TYPE {s}.oban_job_state AS ENUM ('available', 'scheduled', 'executing', 'retryable', 'completed',
    'discarded', 'cancelled', 'suspended');
CREATE TABLE {s}.oban_jobs (id bigserial PRIMARY KEY, state {s}.oban_job_state NOT NULL DEFAULT 'available',
    queue text NOT NULL DEFAULT 'default', worker text NOT NULL, args jsonb NOT NULL DEFAULT '{{}}',
    errors jsonb[] NOT NULL DEFAULT ARRAY[]::jsonb[], attempt integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 20,
    inserted_at timestamp without time zone NOT NULL DEFAULT timezone('UTC', now()),
    scheduled_at timestamp without time zone NOT NULL DEFAULT timezone('UTC', now()),
    attempted_at timestamp without time zone, completed_at timestamp without time zone,
    attempted_by text[], discarded_at timestamp without time zone, priority integer NOT NULL DEFAULT 0,
    tags varchar(255)[] DEFAULT ARRAY[]::varchar[], meta jsonb DEFAULT '{{}}',
    cancelled_at timestamp without time zone);
-- lib/oban/migrations/postgres/v09.ex, v11.ex (oban_peers), v13.ex; the version is the table comment
CREATE INDEX oban_jobs_state_queue_priority_scheduled_at_id_index ON {s}.oban_jobs
    (state, queue, priority, scheduled_at, id);
CREATE INDEX oban_jobs_state_cancelled_at_index ON {s}.oban_jobs (state, cancelled_at);
CREATE INDEX oban_jobs_state_discarded_at_index ON {s}.oban_jobs (state, discarded_at);
CREATE UNLOGGED TABLE {s}.oban_peers (name text PRIMARY KEY, node text NOT NULL,
    started_at timestamp without time zone NOT NULL, expires_at timestamp without time zone NOT NULL);
COMMENT ON TABLE {s}.oban_jobs IS '{version}';
"""

GOOD_JOB = """
CREATE TABLE {s}.good_jobs (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), queue_name text, priority integer,
    serialized_params jsonb, scheduled_at timestamp(6), performed_at timestamp(6), finished_at timestamp(6),
    error text, created_at timestamp(6) NOT NULL DEFAULT timezone('UTC', now()),
    updated_at timestamp(6) NOT NULL DEFAULT timezone('UTC', now()), active_job_id uuid, concurrency_key text,
    cron_key text, retried_good_job_id uuid, cron_at timestamp(6), batch_id uuid, batch_callback_id uuid,
    is_discrete boolean, executions_count integer, job_class text, error_event smallint, labels text[],
    locked_by_id uuid, locked_at timestamp(6));
CREATE TABLE {s}.good_job_processes (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at timestamp(6) NOT NULL DEFAULT timezone('UTC', now()),
    updated_at timestamp(6) NOT NULL DEFAULT timezone('UTC', now()), state jsonb, lock_type smallint);
-- templates/install/migrations/create_good_jobs.rb.erb: the indexes over what the preset reads
CREATE INDEX index_good_jobs_on_queue_name_priority_scheduled_at_unfinished ON {s}.good_jobs
    (queue_name, scheduled_at, id) WHERE finished_at IS NULL;
CREATE INDEX index_good_jobs_jobs_on_finished_at_only ON {s}.good_jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX index_good_jobs_on_locked_by_id ON {s}.good_jobs (locked_by_id) WHERE locked_by_id IS NOT NULL;
"""

SOLID_QUEUE = """
CREATE TABLE {s}.solid_queue_jobs (id bigserial PRIMARY KEY, queue_name varchar NOT NULL, class_name varchar NOT NULL,
    arguments text, priority integer NOT NULL DEFAULT 0, active_job_id varchar, scheduled_at timestamp(6),
    finished_at timestamp(6), concurrency_key varchar, created_at timestamp(6) NOT NULL DEFAULT timezone('UTC', now()),
    updated_at timestamp(6) NOT NULL DEFAULT timezone('UTC', now()));
CREATE TABLE {s}.solid_queue_ready_executions (id bigserial PRIMARY KEY, job_id bigint NOT NULL,
    queue_name varchar NOT NULL, priority integer NOT NULL DEFAULT 0, created_at timestamp(6) NOT NULL);
CREATE TABLE {s}.solid_queue_scheduled_executions (id bigserial PRIMARY KEY, job_id bigint NOT NULL,
    queue_name varchar NOT NULL, priority integer NOT NULL DEFAULT 0, scheduled_at timestamp(6) NOT NULL,
    created_at timestamp(6) NOT NULL);
CREATE TABLE {s}.solid_queue_claimed_executions (id bigserial PRIMARY KEY, job_id bigint NOT NULL,
    process_id bigint, created_at timestamp(6) NOT NULL);
CREATE TABLE {s}.solid_queue_blocked_executions (id bigserial PRIMARY KEY, job_id bigint NOT NULL,
    queue_name varchar NOT NULL, priority integer NOT NULL DEFAULT 0, concurrency_key varchar NOT NULL,
    expires_at timestamp(6) NOT NULL, created_at timestamp(6) NOT NULL);
CREATE TABLE {s}.solid_queue_failed_executions (id bigserial PRIMARY KEY, job_id bigint NOT NULL, error text,
    created_at timestamp(6) NOT NULL);
CREATE TABLE {s}.solid_queue_pauses (id bigserial PRIMARY KEY, queue_name varchar NOT NULL,
    created_at timestamp(6) NOT NULL);
CREATE TABLE {s}.solid_queue_processes (id bigserial PRIMARY KEY, kind varchar NOT NULL,
    last_heartbeat_at timestamp(6) NOT NULL, supervisor_id bigint, pid integer NOT NULL, hostname varchar,
    metadata text, created_at timestamp(6) NOT NULL, name varchar NOT NULL);
-- lib/generators/solid_queue/install/templates/db/queue_schema.rb: the indexes
CREATE INDEX index_solid_queue_jobs_on_finished_at ON {s}.solid_queue_jobs (finished_at);
CREATE INDEX index_solid_queue_poll_by_queue ON {s}.solid_queue_ready_executions (queue_name, priority, job_id);
CREATE INDEX index_solid_queue_dispatch_all ON {s}.solid_queue_scheduled_executions (scheduled_at, priority, job_id);
CREATE INDEX index_solid_queue_claimed_executions_on_process_id_and_job_id ON {s}.solid_queue_claimed_executions
    (process_id, job_id);
CREATE UNIQUE INDEX index_solid_queue_failed_executions_on_job_id ON {s}.solid_queue_failed_executions (job_id);
CREATE INDEX index_solid_queue_processes_on_last_heartbeat_at ON {s}.solid_queue_processes (last_heartbeat_at);
"""
