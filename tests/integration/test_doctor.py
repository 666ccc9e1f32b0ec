"""`jobqueue-exporter doctor` against real servers with missing permissions: a Redis ACL user lacking a
command (asked through ACL DRYRUN, and found by sending the read when the user may not ask), a key
pattern the user may not read, a PostgreSQL role lacking SELECT, a NATS user lacking a JetStream API
subject, and a backend that is not there."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import redis

from exporter.config import parse_config
from exporter.doctor import Report, diagnose, render_json, render_table
from tests.support.nats import NatsServer
from tests.support.postgres import GOOD_JOB, OBAN, PGMQ, RIVER, SOLID_QUEUE, admin, pgmq_queue, scratch_database
from tests.support.servers import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
REDIS_QUEUES = """    queues:
      - {layout: list, name: events, key: "app:events", timestamp_field: ts}
      - {layout: sidekiq, prefix: "app:"}
"""


def by_check(report: Report) -> dict[str, tuple[bool, str, str]]:
    return {f.check: (f.ok, f.detail, f.fix) for f in report.findings}


async def run(text: str, env: dict[str, str] | None = None) -> list[Report]:
    return await diagnose(parse_config(text, "<test>", env or {}))


def redis_config(server: RedisServer, user: str | None = None) -> str:
    login = f"    username: {user}\n    password: ${{PW}}\n" if user else ""
    return f"sources:\n  - name: r\n    type: redis\n    url: {server.url}\n{login}{REDIS_QUEUES}"


def seed_redis(server: RedisServer) -> redis.Redis:
    conn = redis.Redis.from_url(server.url, decode_responses=True)
    conn.rpush("app:events", json.dumps({"ts": 1_700_000_000}), json.dumps({"ts": 1_700_000_010}))
    conn.sadd("app:queues", "default", "mail")  # what Sidekiq's push writes: SADD queues, LPUSH queue:<name>
    conn.lpush("app:queue:default", json.dumps({"jid": "a", "enqueued_at": 1_700_000_000.0}))
    return conn


async def test_redis_all_permissions_present(redis_server: RedisServer) -> None:
    seed_redis(redis_server).close()
    (report,) = await run(redis_config(redis_server))
    checks = by_check(report)
    assert report.ok, report.findings
    assert checks["credentials"] == (True, "logged in as default", "")
    assert {c for c in checks if c.startswith("may run")} >= {
        "may run PING", "may run LLEN app:events", "may run LINDEX app:events", "may run SMEMBERS app:queues",
        "may run LLEN app:queue:default", "may run LLEN app:queue:mail", "may run ZCARD app:retry"}
    assert report.reads == {"tenants": 0, "queues": 3, "queue_names": ["default", "events", "mail"],
                            "items_waiting": 3, "malformed_items": 0}


async def test_redis_user_lacking_a_command_asked_with_acl_dryrun(redis_server: RedisServer) -> None:
    conn = seed_redis(redis_server)
    # may ask ACL DRYRUN/WHOAMI, may read, but not LINDEX
    conn.execute_command("ACL", "SETUSER", "auditor", "on", ">pw1", "resetkeys", "%R~*", "-@all", "+@read",
                         "-keys", "-lindex", "+ping", "+client|setname", "+acl|dryrun", "+acl|whoami")
    (report,) = await run(redis_config(redis_server, "auditor"), {"PW": "pw1"})
    checks = by_check(report)
    ok, detail, fix = checks["may run LINDEX app:events"]
    assert not ok and "lindex" in detail.lower()
    assert "ACL SETUSER auditor +lindex" in fix
    assert checks["may run LLEN app:events"] == (True, "allowed", "")
    assert not checks["collects"][0]  # the real collection fails on the same command
    conn.close()


async def test_redis_user_that_may_not_ask_is_probed_with_the_reads(redis_server: RedisServer) -> None:
    conn = seed_redis(redis_server)
    # no ACL commands at all, no SMEMBERS, and no key outside app:events
    conn.execute_command("ACL", "SETUSER", "reader", "on", ">pw2", "resetkeys", "%R~app:events", "%R~app:queue:*",
                         "-@all", "+@read", "-keys", "-smembers", "+ping", "+client|setname")
    (report,) = await run(redis_config(redis_server, "reader"), {"PW": "pw2"})
    checks = by_check(report)
    assert checks["credentials"] == (True, "logged in", "")  # ACL WHOAMI was refused
    assert not checks["may run SMEMBERS app:queues"][0]
    assert "`ACL SETUSER reader +smembers %R~app:*`" in checks["may run SMEMBERS app:queues"][2]
    ok, detail, fix = checks["may run ZCARD app:retry"]
    assert not ok and "key" in detail.lower() and "%R~app:*" in fix
    assert checks["may run LINDEX app:events"][0] and checks["may run LLEN app:events"][0]
    assert "may run LLEN app:queue:default" not in checks  # the queue names come from the SMEMBERS it may not run
    problems = {c for c, (ok, _, _) in checks.items() if not ok}
    assert problems == {"may run SMEMBERS app:queues", "may run SMEMBERS app:paused", "may run ZCARD app:schedule",
                        "may run ZCARD app:retry", "may run ZCARD app:dead", "may run GET app:stat:processed",
                        "may run GET app:stat:failed", "may run SMEMBERS app:processes", "collects",
                        # a process doctor stands in for (the processes set it may not read): what one needs
                        "may run HGETALL app:jobqueue-doctor-example",
                        "may run HGETALL app:jobqueue-doctor-example:work"}
    conn.close()


async def test_unreachable_and_wrong_password(redis_server: RedisServer) -> None:
    port = free_port()
    (gone,) = await run(f"sources:\n  - name: r\n    type: redis\n    url: redis://127.0.0.1:{port}/0\n"
                        f"    timeout: 1s\n{REDIS_QUEUES}")
    assert [(f.check, f.ok) for f in gone.findings] == [("reachable", False)]
    assert gone.findings[0].fix.startswith(f"Check that Redis runs at redis://127.0.0.1:{port}/0")
    conn = redis.Redis.from_url(redis_server.url)
    conn.execute_command("ACL", "SETUSER", "someone", "on", ">right", "+@all", "~*")
    (refused,) = await run(redis_config(redis_server, "someone"), {"PW": "wrong"})
    assert [(f.check, f.ok) for f in refused.findings] == [("reachable", True), ("credentials", False)]
    assert "refused the login" in refused.findings[1].fix
    conn.close()


@pytest.fixture
def pg_role() -> Iterator[tuple[str, str]]:
    """A database with River's tables, and a login role that may read all of them but river_queue."""
    role = f"jqdoc_{uuid.uuid4().hex[:8]}"
    with scratch_database() as dsn:
        with admin(dsn) as conn:
            conn.execute(RIVER.format(s="public"))
            conn.execute("INSERT INTO river_job (kind, queue) VALUES ('email', 'mail'), ('email', 'mail')")
            conn.execute(f"CREATE ROLE {role} LOGIN")
            conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
            conn.execute(f"REVOKE SELECT ON river_queue FROM {role}")
        try:
            yield dsn.replace("postgres@", f"{role}@"), role
        finally:
            with admin(dsn) as conn:
                conn.execute(f"DROP OWNED BY {role}")
            with admin() as conn:
                conn.execute(f"DROP ROLE {role}")


async def test_postgres_role_lacking_select(pg_role: tuple[str, str]) -> None:
    dsn, role = pg_role
    text = f"sources:\n  - name: pg\n    type: postgres\n    dsn: {dsn}\n    queues:\n      - {{preset: river}}\n"
    (report,) = await run(text)
    checks = by_check(report)
    assert checks["credentials"] == (True, f"logged in as {role}", "")
    assert checks['may read "public"."river_job"'] == (True, "SELECT granted", "")
    grant = f'GRANT SELECT ON "public"."river_queue" TO "{role}";'
    assert checks['may read "public"."river_queue"'] == (
        False, "no SELECT privilege", f"Run as the owner or a superuser (read-only grants): {grant}")
    assert [f.apply for f in report.findings if not f.ok] == [grant]
    assert not report.ok
    with admin(dsn.replace(f"{role}@", "postgres@")) as conn:
        conn.execute(f"GRANT SELECT ON river_queue TO {role}")
    (fixed,) = await run(text)
    assert fixed.ok, fixed.findings
    assert fixed.reads["queue_names"] == ["mail"] and fixed.reads["items_waiting"] == 2


async def test_postgres_missing_tables() -> None:
    with scratch_database() as dsn:
        text = (f"sources:\n  - name: pg\n    type: postgres\n    dsn: {dsn}\n    queues:\n"
                "      - {preset: pgmq}\n      - {preset: generic, table: jobs, waiting: [new]}\n")
        (report,) = await run(text)
    checks = by_check(report)
    assert checks['may read "jobs"'][:2] == (False, "no such table or view")
    assert checks['may read "pgmq"."meta"'][:2] == (False, "no such table or view")


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    allowed = ["$JS.API.INFO", "$JS.API.STREAM.LIST", "$JS.API.STREAM.INFO.>", "$JS.API.STREAM.MSG.GET.>"]
    reader = {"user": "reader", "password": "pw", "permissions": {
        "publish": {"allow": allowed}, "subscribe": {"allow": ["_INBOX.>"]}}}
    users = json.dumps([{"user": "admin", "password": "admin"}, reader])
    server = NatsServer(tmp_path, extra_config=f"authorization {{ users = {users} }}").start()
    yield server
    server.stop()


async def test_nats_user_lacking_consumer_list(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url, user="admin", password="admin")
    await nc.jetstream().add_stream(name="JOBS", subjects=["jobs.>"])
    await nc.close()
    text = (f"sources:\n  - name: n\n    type: nats\n    url: {nats_server.url}\n    user: reader\n"
            "    password: ${PW}\n    timeout: 1s\n")
    (report,) = await run(text, {"PW": "pw"})
    checks = by_check(report)
    assert checks["may request $JS.API.INFO"] == (True, "allowed", "")
    assert checks["may request $JS.API.STREAM.INFO.JOBS"] == (True, "allowed", "")
    ok, detail, fix = checks["may request $JS.API.CONSUMER.LIST.JOBS"]
    assert not ok and "permissions violation" in detail.lower() and "publish to $JS.API.CONSUMER.LIST.> (" in fix
    ok, detail, fix = checks["may subscribe to max-deliveries advisories"]
    assert not ok and "MAX_DELIVERIES" in fix


def test_cli_json_and_table(redis_server: RedisServer, tmp_path: Path) -> None:
    seed_redis(redis_server).close()
    config = tmp_path / "c.yaml"
    config.write_text(redis_config(redis_server))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "exporter", "doctor", "--config", str(config), *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=120,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})

    done = cli("--format", "json")
    assert done.returncode == 0, done.stderr
    body: dict[str, Any] = json.loads(done.stdout)
    assert body["ok"] is True and body["sources"][0]["reads"]["items_waiting"] == 3
    table = cli()
    assert table.returncode == 0 and table.stdout.endswith("no problems found\n")
    assert "r       would read" in table.stdout
    conn = redis.Redis.from_url(redis_server.url)
    conn.execute_command("ACL", "SETUSER", "default", "-zcard")
    bad = cli("--format", "json")
    assert bad.returncode == 1 and json.loads(bad.stdout)["ok"] is False
    assert "fix: Allow the ACL user default to run ZCARD on app:* (read-only" in cli().stdout
    conn.execute_command("ACL", "SETUSER", "default", "+zcard")
    conn.close()


def test_render_without_findings_of_a_source() -> None:
    reports = [Report("a", "system")]
    assert render_table(reports).endswith("no problems found\n")
    assert json.loads(render_json(reports)) == {"ok": True, "sources": [
        {"source": "a", "type": "system", "ok": True, "checks": [], "reads": {}}]}


async def test_postgres_and_nats_not_there() -> None:
    pg, nats_port = free_port(), free_port()
    reports = await run(f"sources:\n  - name: pg\n    type: postgres\n    dsn: postgresql://postgres@127.0.0.1:{pg}/x\n"
                        f"    timeout: 1s\n  - name: n\n    type: nats\n    url: nats://127.0.0.1:{nats_port}\n"
                        "    timeout: 1s\n")
    for report, fix in zip(reports, ("Check that PostgreSQL runs at", "Check that nats-server runs at"), strict=True):
        assert [(f.check, f.ok) for f in report.findings] == [("reachable", False)]
        assert report.findings[0].fix.startswith(fix)


# ------------------------------------------------------------------------ fixes applied as a user would
# Each layout of the read-only test's data set (plus keys without `:`, Sidekiq and Celery without a
# prefix, Celery's priority lists `<queue>\x06\x16<n>` from kombu's own send), read by an ACL user
# that starts with nothing granted: doctor's printed fixes, applied with redis-cli as the admin, must
# leave a clean report, a collection that is up with the queue, a job listing that reads, and an
# empty ACL LOG (no command refused on the way).
LAYOUTS = [
    ('{layout: list, name: q1, key: q1, timestamp_field: ts}', "q1"),
    ('{layout: list, name: odd, key: "odd*[1]?\\\\"}', "odd"),  # glob metacharacters in the key: escaped
    ('{layout: list, name: events, key: "tenant_{tenant}:events", timestamp_field: ts}', "events"),
    ("{layout: zset, name: sched, key: zq}", "sched"),
    ("{layout: stream, name: stream, key: sq, groups: true}", "stream"),
    ('{layout: laravel, prefix: "app_database_"}', "default"),
    ('{layout: horizon, prefix: "app_database_", horizon_prefix: "app_horizon:"}', "default"),
    ('{layout: sidekiq, prefix: "sk:"}', "default"),
    ("{layout: sidekiq}", "plain"),
    ("{layout: rq}", "mail"),
    ("{layout: celery}", "celery"),
    ("{layout: celery, queues: [prio]}", "prio"),
    ("{layout: bullmq, queues: [work]}", "work"),
    ("{layout: arq}", "arq:queue"),
    ("{layout: dramatiq, queues: [jobs]}", "jobs"),
    ("{layout: huey}", "huey"),
    ("{layout: saq, queues: [sq]}", "sq"),
    ("{layout: taskiq}", "taskiq"),
    ("{layout: taskiq, broker: stream, queues: [tq]}", "tq"),
    ("{layout: beequeue, queues: [bw]}", "bw"),
]
TENANTS = '    tenants:\n      scan: {match: "tenant_*:events", regex: "^tenant_(?P<tenant>[^:]+):"}\n'


def applied_fixes(server: RedisServer, body: dict[str, Any]) -> list[str]:
    """Every `apply` line of doctor's JSON, run by the admin through redis-cli as a user would paste them."""
    lines = [c["apply"] for s in body["sources"] for c in s["checks"] if not c["ok"] and c["apply"]]
    done = subprocess.run(["redis-cli", "-p", str(server.port)], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "ERR" not in done.stdout, (lines, done.stdout, done.stderr)
    assert done.stdout.split() == ["OK"] * len(lines)
    return lines


@pytest.mark.parametrize(("queues", "queue"), LAYOUTS, ids=[q for _, q in LAYOUTS])
async def test_redis_fixes_applied_leave_a_clean_report(redis_server: RedisServer, tmp_path: Path, queues: str,
                                                        queue: str) -> None:
    from tests.integration.test_redis_readonly import seed
    from tests.support.redis_libs import NOW, seed_celery, seed_sidekiq, sidekiq_process

    admin = redis.Redis.from_url(redis_server.url, decode_responses=True)
    seed(admin)
    admin.rpush("q1", json.dumps({"ts": NOW - 3}))
    admin.rpush("odd*[1]?\\", "x")
    admin.rpush("odd", "not this one")  # what `%R~odd*` would also match
    seed_sidekiq(admin, "", "plain", [NOW - 5])
    sidekiq_process(admin, "", "host:1:abc", NOW, 1, False, 5, ["plain"])
    seed_celery(redis_server.url, "", "prio", [None, 3, 9])  # kombu's own priority lists
    admin.execute_command("ACL", "SETUSER", "probe", "on", ">pw")  # nothing granted
    text = (f"sources:\n  - name: r\n    type: redis\n    url: {redis_server.url}\n    username: probe\n"
            f"    password: ${{PW}}\n    queues:\n      - {queues}\n" + (TENANTS * ("{tenant}" in queues)))
    (first,) = await run(text, {"PW": "pw"})
    body = json.loads(render_json([first]))
    assert not first.ok
    problems = [c for c in body["sources"][0]["checks"] if not c["ok"]]
    assert all(c["apply"].startswith("ACL SETUSER probe ") for c in problems if c["check"] != "collects")
    for shown in (render_json([first]), render_table([first])):  # printable: no raw control characters
        assert all(ch == "\n" or 32 <= ord(ch) < 127 for ch in shown), shown
    lines = applied_fixes(redis_server, body)
    print("\n".join(lines))
    assert all(" ~" not in line and "+@" not in line for line in lines)  # read-only: %R~ and named commands
    if queue == "odd":  # the escaped pattern matches its key and not the key its unescaped glob would
        assert admin.execute_command("ACL", "DRYRUN", "probe", "LLEN", "odd*[1]?\\") == "OK"
        assert admin.execute_command("ACL", "DRYRUN", "probe", "LLEN", "odd") != "OK"
    (second,) = await run(text, {"PW": "pw"})
    assert second.ok, [f for f in second.findings if not f.ok]
    assert queue in second.reads["queue_names"]
    admin.execute_command("ACL", "LOG", "RESET")
    config = tmp_path / "c.yaml"
    config.write_text(text)
    once = collect_once(config, {"PW": "pw"})
    assert once.returncode == 0, once.stderr
    assert 'jobqueue_source_up{source="r",backend="redis"} 1' in once.stdout
    assert f'queue="{queue}"' in once.stdout
    await list_every_state(text, queue)
    assert admin.execute_command("ACL", "LOG") == []  # nothing was refused to the exporter
    admin.close()


def collect_once(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`jobqueue-exporter --once`: one collection, the exposition on stdout, exit 0 when every source is up."""
    return subprocess.run([sys.executable, "-m", "exporter", "--config", str(config), "--once"], capture_output=True,
                          text=True, cwd=ROOT, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **env})


async def list_every_state(text: str, queue: str) -> None:
    """The job listing's reads (Source.list_jobs, what the shim serves) under the fixed ACL."""
    from exporter.config import parse_config as parse
    from exporter.model import Snapshot
    from exporter.sources.base import JOB_STATES, SourceContext
    from exporter.sources.redis import RedisSource

    cfg = parse(text, "<test>", {"PW": "pw"}).sources[0]
    source = RedisSource(cfg, SourceContext(snapshot=Snapshot, shard=(0, 1)))
    try:
        reading = await source.collect()
        tenant = next((q.tenant for q in reading.queues if q.queue == queue), "")
        for state in JOB_STATES:
            await source.list_jobs(queue, state, 10, 0, tenant)
    finally:
        await source.close()


# Every PostgreSQL preset, its tables made as the library (or its migrations) makes them, read by a
# login role with nothing granted: doctor's GRANTs, run by the admin as printed, leave a clean report
# and a collection that is up with the queue.
def install_generic(dsn: str) -> None:
    with admin(dsn) as conn:
        conn.execute("CREATE SCHEMA gen; CREATE TABLE gen.jobs (id bigserial PRIMARY KEY, queue text NOT NULL, "
                     "status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now()); "
                     "INSERT INTO gen.jobs (queue, status) VALUES ('gq', 'pending')")


def install_sql(sql: str, seed: str) -> Callable[[str], None]:
    def install(dsn: str) -> None:
        with admin(dsn) as conn:
            conn.execute(sql)
            conn.execute(seed)
    return install


def install_node(script: str) -> Callable[[str], None]:
    def install(dsn: str) -> None:
        subprocess.run(["node", str(ROOT / "tests" / "node" / script), dsn], check=True, capture_output=True,
                       timeout=120)
    return install


def install_procrastinate(dsn: str) -> None:
    import procrastinate

    async def defer() -> None:
        app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

        @app.task(queue="pq", name="send")
        async def send() -> None: ...

        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            await send.defer_async()

    asyncio.run(defer())


PRESETS: list[tuple[str, Callable[[str], None], str]] = [
    ("{preset: generic, table: gen.jobs, waiting: [pending], queue_column: queue}", install_generic, "gq"),
    ("{preset: pgmq}", install_sql(PGMQ, pgmq_queue("mq")), "mq"),
    ("{preset: river, schema: rv}", install_sql("CREATE SCHEMA rv;" + RIVER.format(s="rv"),
                                                "INSERT INTO rv.river_job (kind, queue) VALUES ('email', 'rq')"), "rq"),
    ("{preset: oban, schema: ob}", install_sql("CREATE SCHEMA ob;" + OBAN.format(s="ob", version=14),
                                               "INSERT INTO ob.oban_jobs (queue, worker) VALUES ('oq', 'W')"), "oq"),
    ("{preset: good_job}", install_sql(GOOD_JOB.format(s="public"), "INSERT INTO good_jobs (queue_name, "
                                       "executions_count) VALUES ('gj', 0)"), "gj"),
    ("{preset: solid_queue, schema: sq}", install_sql(
        "CREATE SCHEMA sq;" + SOLID_QUEUE.format(s="sq"),
        "INSERT INTO sq.solid_queue_jobs (id, queue_name, class_name) VALUES (1, 'sqq', 'A'); INSERT INTO "
        "sq.solid_queue_ready_executions (job_id, queue_name, created_at) VALUES (1, 'sqq', now())"), "sqq"),
    ("{preset: pg-boss}", install_node("pg_boss.js"), "emails"),
    ("{preset: graphile-worker}", install_node("pg_graphile.js"), "send_email"),
    ("{preset: procrastinate}", install_procrastinate, "pq"),
]


@pytest.mark.parametrize(("preset", "install", "queue"), PRESETS,
                         ids=[p.split(",")[0][9:].strip("}") for p, _, _ in PRESETS])
def test_postgres_fixes_applied_leave_a_clean_report(tmp_path: Path, preset: str, install: Callable[[str], None],
                                                     queue: str) -> None:
    role = f"jqdoc_{uuid.uuid4().hex[:8]}"
    with scratch_database() as dsn:
        install(dsn)
        with admin() as conn:
            conn.execute(f"CREATE ROLE {role} LOGIN")  # nothing granted
        try:
            text = (f"sources:\n  - name: pg\n    type: postgres\n    dsn: {dsn.replace('postgres@', f'{role}@')}\n"
                    f"    queues:\n      - {preset}\n")
            config = tmp_path / "c.yaml"
            config.write_text(text)
            first = doctor_json(config)
            assert first["ok"] is False
            grants = [c["apply"] for s in first["sources"] for c in s["checks"] if not c["ok"] and c["apply"]]
            assert grants and all(g.startswith("GRANT ") for g in grants)
            assert all(" SELECT ON " in g or " USAGE ON SCHEMA " in g for g in grants)  # read-only
            with admin(dsn) as conn:
                for grant in grants:
                    conn.execute(grant)
            second = doctor_json(config)
            assert second["ok"] is True, second
            once = collect_once(config, {})
            assert once.returncode == 0, once.stderr
            assert 'jobqueue_source_up{source="pg",backend="postgres"} 1' in once.stdout
            assert f'queue="{queue}"' in once.stdout
        finally:
            with admin(dsn) as conn:
                conn.execute(f"DROP OWNED BY {role}")
            with admin() as conn:
                conn.execute(f"DROP ROLE {role}")


def doctor_json(config: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "exporter", "doctor", "--config", str(config), "--format", "json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode in (0, 1), done.stderr
    body: dict[str, Any] = json.loads(done.stdout)
    return body


def test_sentinel_acl_fixes(tmp_path: Path) -> None:
    """The sentinels' own ACL: a sentinel user with nothing granted is told `+sentinel|masters` (and
    `+sentinel|slaves` for `replica: true`), applied on the sentinel; then the replica's own fixes;
    then a clean report and a collection through the sentinel."""
    from tests.support.redis_topology import SentinelSetup

    setup = SentinelSetup(tmp_path).start()
    try:
        sentinel, master, replica = (setup.conn(s) for s in (setup.sentinel, setup.master, setup.replica))
        master.rpush("q1", "x")
        for conn in (sentinel, master, replica):  # ACLs are per server: a replica does not copy them
            conn.execute_command("ACL", "SETUSER", "probe", "on", ">pw")  # nothing granted
        text = (f"sources:\n  - name: r\n    type: redis\n    url: redis://127.0.0.1:{setup.master.port}\n"
                f"    username: probe\n    password: pw\n    sentinel:\n      master_name: {setup.sentinel.name}\n"
                f"      urls: [\"redis://probe:pw@127.0.0.1:{setup.sentinel.port}\"]\n      replica: true\n"
                "    queues:\n      - {layout: list, name: q1, key: q1}\n")
        config = tmp_path / "c.yaml"
        config.write_text(text)
        first = doctor_json(config)
        problems = {c["check"]: c["apply"] for c in first["sources"][0]["checks"] if not c["ok"]}
        where = f"sentinel redis://***@127.0.0.1:{setup.sentinel.port}"  # the whole userinfo is never shown
        assert problems == {f"{where} may run SENTINEL MASTERS": "ACL SETUSER probe +sentinel|masters",
                            f"{where} may run SENTINEL SLAVES": "ACL SETUSER probe +sentinel|slaves",
                            "master": ""}
        for line in problems.values():
            if line:
                sentinel.execute_command(*line.split())
        second = doctor_json(config)  # the sentinel answers now: the data server's own fixes
        lines = [c["apply"] for c in second["sources"][0]["checks"] if not c["ok"] and c["apply"]]
        assert lines and all(line.startswith("ACL SETUSER probe ") for line in lines)
        for conn in (master, replica):
            for line in lines:
                conn.execute_command(*line.split())
        third = doctor_json(config)
        assert third["ok"] is True, [c for c in third["sources"][0]["checks"] if not c["ok"]]
        once = collect_once(config, {})
        assert once.returncode == 0 and 'queue="q1"' in once.stdout, once.stdout + once.stderr
    finally:
        setup.stop()


def test_each_sentinel_is_checked_with_its_own_urls_credentials(tmp_path: Path) -> None:
    """The source logs in to each sentinel with that url's user (connect.py `sentinel_target`), so doctor
    must too: a sentinel whose own user may ask is fine, even when the first url names another user
    (before: every sentinel was asked as the first url's user, a refused login the daemon never meets)."""
    from tests.support.redis_topology import SentinelSetup

    setup = SentinelSetup(tmp_path).start()
    try:
        sentinel = setup.conn(setup.sentinel)
        sentinel.execute_command("ACL", "SETUSER", "watch", "on", ">w", "+sentinel|masters")
        dead = free_port()  # the first url: nothing listens there
        text = (f"sources:\n  - name: r\n    type: redis\n    url: redis://127.0.0.1:{setup.master.port}\n"
                f"    sentinel:\n      master_name: {setup.sentinel.name}\n"
                f"      urls: [\"redis://first:f@127.0.0.1:{dead}\", \"redis://watch:w@127.0.0.1:{setup.sentinel.port}\"]\n"
                "    queues:\n      - {layout: list, name: q1, key: q1}\n")
        config = tmp_path / "c.yaml"
        config.write_text(text)
        checks = {c["check"]: c["ok"] for c in doctor_json(config)["sources"][0]["checks"]}
        live = f"sentinel redis://***@127.0.0.1:{setup.sentinel.port}"
        assert checks[f"{live} may run SENTINEL MASTERS"] is True, checks
        assert f"{live} credentials" not in checks
        assert checks[f"sentinel redis://***@127.0.0.1:{dead} reachable"] is False
        assert "master" not in checks  # a sentinel answered
    finally:
        setup.stop()
