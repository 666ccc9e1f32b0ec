"""`jobqueue-exporter doctor`: before deploying, ask every configured backend what the exporter will need.

For each source: is the backend reachable, are the credentials accepted, is every permission the
source needs present, and what would it read (tenants and queues, with counts)? Every problem comes
with a fix in plain words. It only reads and asks, as the exporter does:
  redis     `ACL DRYRUN <user> <command> <key> ...` for every command the configured layouts send (the op
            ops' `acl()`); when the user may not run ACL DRYRUN itself, the read command is
            sent as is (on the real key; reads only) and a NOPERM answer is the finding.
  postgres  `has_schema_privilege` and `has_table_privilege` on each table and view the presets and
            the migrations read; the operator's SQL checks and tenants query
            are run once (read-only, as in a collection) and a permission error names the statement.
  nats      one request to each JetStream API subject the source uses (INFO, STREAM.LIST, STREAM.INFO,
            CONSUMER.LIST, STREAM.MSG.GET); the server's "Permissions Violation" says which is denied.
  others    one collection.
A table on a terminal, JSON with `--format json`; the exit status is 1 when anything is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg
from nats.errors import TimeoutError as NatsTimeoutError
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, NoPermissionError, RedisError, ResponseError

from exporter.config import ConfigError, ExporterConfig, default_config, load_config, parse_shard
from exporter.facts import CheckRecord, QueryOutcome, Tenants
from exporter.log import setup_logging
from exporter.model import Reading, Snapshot
from exporter.redact import redact_text, redact_url_list
from exporter.sources import SOURCE_TYPES
from exporter.sources.base import (
    JOB_STATES,
    NotFound,
    Source,
    SourceContext,
    SourceDenied,
    SourceError,
    read_secret,
    redact_url,
)
from exporter.sources.nats import NatsSource
from exporter.sources.postgres import PostgresSource
from exporter.sources.postgres.config import quote_ident
from exporter.sources.postgres.presets import reads, statistics_tables, unanalyzed
from exporter.sources.redis import RedisSource
from exporter.sources.redis.clients import client_options
from exporter.sources.redis.connect import parse_endpoint
from exporter.sources.redis.errors import WireError
from exporter.sources.redis.layouts.base import fill_tenant


@dataclass
class Finding:
    """One thing checked: what, whether it is fine, what was seen, and how to fix it when it is not."""

    check: str
    ok: bool
    detail: str = ""
    fix: str = ""
    apply: str = ""  # the fix as one command for the backend's own client (redis-cli, psql), if it is one


@dataclass
class Report:
    """Everything the doctor found for one source."""

    source: str
    type: str
    findings: list[Finding] = field(default_factory=list)
    reads: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def add(self, check: str, ok: bool, detail: str = "", fix: str = "", apply: str = "") -> bool:
        self.findings.append(Finding(check, ok, detail, "" if ok else fix, "" if ok else apply))
        return ok


# ---------------------------------------------------------------------------------------------- common


def _tls_hint(error: str) -> str:
    if "CERTIFICATE_VERIFY_FAILED" in error:
        return (" The server's certificate is not signed by a CA the exporter trusts: point tls.ca_file at the CA "
                "that signed it (or fix the host name in the url to one the certificate names).")
    if "certificate" in error.lower():
        return " The server wants a client certificate: give tls.cert_file and tls.key_file."
    return ""


async def _collection(source: Source, report: Report) -> Reading | None:
    """One real collection, as the exporter would run it."""
    try:
        reading = await asyncio.wait_for(source.collect(), source.config.timeout * 2)
    except (SourceError, TimeoutError, OSError) as err:
        text = str(err) or type(err).__name__
        report.add("collects", False, text, "The collection failed; fix the problems above, then run doctor again."
                   + _tls_hint(text))
        return None
    report.add("collects", True, f"{len(reading.queues)} queues, {len(reading.samples)} other values")
    queues = sorted({q.queue for q in reading.queues})
    tenants = sorted({q.tenant for q in reading.queues if q.tenant})
    known = reading.fact(Tenants)
    report.reads = {"tenants": len(known.ids) if known is not None else len(tenants), "queues": len(reading.queues),
                    "queue_names": queues[:50], "items_waiting": sum(q.depth for q in reading.queues),
                    "malformed_items": reading.malformed}
    return reading


async def _generic(source: Source, report: Report) -> None:
    await _collection(source, report)


# ---------------------------------------------------------------------------------------------- redis

_REDIS_UNREACHABLE = ("Check that Redis runs at {where} and that this host may connect to it (address, port, "
                      "firewall, `bind`); for TLS the url must start with rediss://.")
_REDIS_LOGIN = ("Redis refused the login: check username and password (password_file, or the environment variable "
                "behind password:); the ACL user must exist and be `on`.")


def _asker(source: RedisSource) -> Redis:
    """A plain client for the questions (a cluster client would scatter ACL commands over nodes)."""
    if isinstance(source.client, Redis):
        return source.client
    cfg = source.config
    endpoint = parse_endpoint(cfg.url, cfg.tls, cfg.username, read_secret(cfg.password, cfg.password_file))
    return Redis(**client_options(cfg.timeout), **endpoint.redis_py())


# What doctor puts where the backend has not told it a name yet (a tenant, a queue, a worker): the
# commands behind each are checked too, and the key patterns of the fixes cover it with `*`.
STAND_IN = "jobqueue-doctor-example"
Need = tuple[tuple[str, ...], str | None]  # a command with its key, and the ACL key pattern that covers it


async def _redis_commands(source: RedisSource) -> list[Need]:
    """Every command (with a real key) a collection and the job listing of this config send, each with
    the read-only key pattern an ACL needs for it (None: the command reads no key)."""
    cfg = source.config
    needs: list[Need] = [(("PING",), None), (("CLIENT", "SETNAME", "jobqueue-exporter"), None)]
    db = parse_endpoint(cfg.url).db
    if db:
        needs.append((("SELECT", str(db)), None))
    if cfg.cluster:
        needs.append((("CLUSTER", "SLOTS"), None))
    if cfg.tenants is not None and cfg.tenants.scan is not None:
        needs.append((("SCAN", "0", "MATCH", cfg.tenants.scan.match, "COUNT", "10"), None))
    try:
        tenants = await source._current_tenants()
    except (RedisError, WireError, OSError):  # OSError: a Sentinel lookup timing out (TimeoutError)
        tenants = []  # the SCAN check below says why
    sample = tenants[0] if tenants else STAND_IN
    for layout in cfg.queues:
        tenant = sample if layout.per_tenant else ""
        reads = layout.discovery(tenant)
        try:
            found: dict[Any, Any] = dict(zip(reads, await source.runner.run(list(reads.values())), strict=True))
        except (RedisError, WireError, OSError):
            found = {name: [] for name in reads}  # a read denied (its command is checked) or lost: found nothing
        ops = list(reads.values())
        # What the discovery found, and a stand-in it may find later (a queue, a worker process): the
        # commands behind each are checked now, so that the fixes, once applied, leave nothing to find.
        for results in (found, {name: [STAND_IN] for name in reads}):
            with contextlib.suppress(ValueError, TypeError, IndexError, KeyError, AttributeError):
                ops += layout.plan_known(tenant, results, time.time(), [STAND_IN]).reads.values()
        commands = [c for op in ops for c in op.acl()]
        for queue in layout.static_queues() or [STAND_IN]:  # the job listing (Source.list_jobs), read live
            commands += [c for state in JOB_STATES if (where := layout.job_range(tenant, queue, state)) is not None
                         for c in where.acl()]
        templates = [t for t in layout.templates() if t]
        match = layout.scan_match() if layout.registry else None
        if match is not None:  # the queues a registry does not list all (RedisSource._scan_queues)
            commands.append(("SCAN", "0", "MATCH", match, "COUNT", "1000"))
        needs += [(c, None if (key := _key_of(c)) is None else key_pattern(key, templates, tenant)) for c in commands]
    return list(dict.fromkeys(needs))


def _key_of(command: tuple[str, ...]) -> str | None:
    """The key a read command names (XINFO GROUPS: after the subcommand), or None for keyless ones."""
    if command[0] in ("PING", "CLIENT", "CLUSTER", "SELECT", "SCAN"):
        return None
    return command[2] if command[0] == "XINFO" else command[1]


def glob_escape(text: str) -> str:
    """A literal for a Redis glob pattern (util.c `stringmatchlen`: `\\` escapes the next character)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def key_pattern(key: str, templates: list[str], tenant: str) -> str:
    """The narrowest pattern that still covers every key of its kind: the layout's own prefix (a
    template's text with `{tenant}` as `*`) followed by `*`, the exact key when it is a template (a
    list's key, a queue name), else its first `:`-segment (`arq:*`) or, without `:`, the key itself."""

    def literal(text: str) -> str:
        pieces = [glob_escape(p) for p in text.split("{tenant}")]
        return "*".join(pieces)

    for template in sorted(templates, key=len, reverse=True):
        filled = fill_tenant(template, tenant)
        if key == filled:
            return literal(template)
        if key.startswith(filled) and not filled[-1].isalnum():
            return literal(template) + "*"
        if key.startswith(filled + ":"):
            return literal(template + ":") + "*"
    head, colon, _ = key.partition(":")
    pattern = glob_escape(head + colon) + "*" if colon else glob_escape(key)
    for name in (tenant, STAND_IN):
        pattern = pattern.replace(glob_escape(name), "*") if name else pattern
    return pattern


def cli_quote(arg: str) -> str:
    """An argument as redis-cli reads it (sds.c `sdssplitargs`): bare when plain printable ASCII, else
    in double quotes with `\\xHH` for every byte that is not, so a fix never prints a raw control byte."""
    if arg and all(33 <= ord(c) < 127 and c not in "\"'\\" for c in arg):
        return arg
    out = []
    for byte in arg.encode():
        c = chr(byte)
        out.append("\\" + c if c in "\"\\" else c if 32 <= byte < 127 else f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'


async def _redis(source: RedisSource, report: Report) -> None:
    cfg = source.config
    where = redact_url(cfg.url) + (" (cluster)" if cfg.cluster else "")
    if cfg.sentinel is not None:
        where = f"master {cfg.sentinel.master_name!r} via sentinels {', '.join(map(redact_url, cfg.sentinel.urls))}"
    if cfg.sentinel is not None and not await _sentinels(source, report):
        report.add("master", False, "no sentinel said where the master is", "The master's own checks need a "
                   "sentinel's answer: apply the sentinel fixes above, then run doctor again.")
        return
    asker = _asker(source)
    try:
        logged_in = await _redis_login(asker, where, report)
        if logged_in:
            await _redis_permissions(source, asker, report)
    finally:
        if asker is not source.client:
            await asker.aclose()
    if logged_in:
        await _collection(source, report)


async def _sentinels(source: RedisSource, report: Report) -> bool:
    """Each sentinel, with its own url's credentials (as the source logs in to it, connect.py
    `sentinel_target`): may this user ask it where the master (and, with `replica: true`, the
    replicas) are? It is asked exactly that, `SENTINEL MASTERS` / `SENTINEL SLAVES <name>`, which only
    read."""
    cfg = source.config
    assert cfg.sentinel is not None
    asks = [("SENTINEL", "MASTERS")] + [("SENTINEL", "SLAVES", cfg.sentinel.master_name)] * cfg.sentinel.replica
    answered = False
    for url in cfg.sentinel.urls:
        point = parse_endpoint(url, cfg.tls if url.startswith("rediss") else None)
        ask = Redis(**point.redis_py(),
                    socket_connect_timeout=cfg.timeout, socket_timeout=cfg.timeout, decode_responses=True)
        try:
            for command in asks:
                denied = None
                try:
                    await ask.execute_command(*command)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                except NoPermissionError as err:
                    denied = str(err)
                name = f"{command[0].lower()}|{command[1].lower()}"
                line = f"ACL SETUSER {cli_quote(point.username or 'default')} +{name}"
                answered |= report.add(
                    f"sentinel {redact_url(url)} may run {' '.join(command[:2])}", denied is None, denied or "allowed",
                    f"On that sentinel (its own ACL, not the master's): `{line}`", line)
        except AuthenticationError as err:
            report.add(f"sentinel {redact_url(url)} credentials", False, str(err), "The sentinel refused the login: "
                       "the user and password of this sentinel url must exist on it.")
        except (RedisError, OSError) as err:
            report.add(f"sentinel {redact_url(url)} reachable", False, str(err) or type(err).__name__,
                       f"Check that a sentinel runs at {redact_url(url)} and that this host may connect to it.")
        finally:
            await ask.aclose()
    return answered


async def _redis_login(asker: Redis, where: str, report: Report) -> bool:
    """Reachable, and the credentials accepted? (PING, as the exporter's first command.)"""
    try:
        await asker.ping()
    except AuthenticationError as err:
        report.add("reachable", True, where)
        return report.add("credentials", False, str(err), _REDIS_LOGIN)
    except NoPermissionError:
        pass  # logged in, but PING is not allowed: the permission checks say so
    except (RedisError, OSError) as err:
        text = str(err)
        return report.add("reachable", False, f"{where}: {text}",
                          _REDIS_UNREACHABLE.format(where=where) + _tls_hint(text))
    return report.add("reachable", True, where)


async def _redis_permissions(source: RedisSource, asker: Redis, report: Report) -> None:
    """ACL DRYRUN of every command with its real key; the reads themselves when the user may not ask."""
    try:
        user: str | None = str(await asker.execute_command("ACL", "WHOAMI"))  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    except ResponseError:
        user = None
    report.add("credentials", True, f"logged in as {user}" if user else "logged in")
    dryrun = user is not None
    for command, pattern in await _redis_commands(source):
        shown = " ".join(cli_quote(c) for c in (command[:3] if command[0] in ("CLIENT", "XINFO", "CLUSTER")
                                               else command[:2]))
        denied = None
        if dryrun:
            try:
                answer = await asker.execute_command("ACL", "DRYRUN", user, *command)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                denied = None if str(answer) == "OK" else str(answer)
            except ResponseError as err:
                if "NOPERM" not in str(err) and "unknown" not in str(err).lower():
                    denied = str(err)
                else:
                    dryrun = False  # may not ask: fall back to sending the reads themselves
        if not dryrun:
            try:
                # the reply is not read, only whether Redis refused: a pickled item is not text (huey)
                await asker.execute_command(*command, NEVER_DECODE=True)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            except ResponseError as err:  # NOPERM is the finding; WRONGTYPE, NOSCRIPT...: the command was allowed
                denied = str(err) if isinstance(err, NoPermissionError) or "NOPERM" in str(err) else None
        name = user or source.config.username or "default"
        report.add(f"may run {shown}", denied is None, denied or "allowed", *_acl_fix(name, command, pattern))


def _acl_fix(user: str, command: tuple[str, ...], pattern: str | None) -> tuple[str, str]:
    """Words and the redis-cli line that allow this command on every key of its kind, read-only:
    the command and the key pattern together, whichever of the two Redis named, so that applying
    the fixes leaves nothing behind."""
    name = command[0].lower()
    if command[0] in ("CLIENT", "XINFO", "CLUSTER"):
        name = f"{command[0].lower()}|{command[1].lower()}"
    rules = [f"+{name}"] + ([f"%R~{pattern}"] if pattern is not None else [])
    line = " ".join(cli_quote(w) for w in ("ACL", "SETUSER", user, *rules))
    reads = f" on {cli_quote(pattern)} (read-only: %R, never ~)" if pattern is not None else ""
    return (f"Allow the ACL user {cli_quote(user)} to run {command[0]}{reads}: `{line}` (see 'Minimal ACL' in "
            "docs/sources/redis.md for the whole read-only set)."), line


# ---------------------------------------------------------------------------------------------- postgres


async def _postgres(source: PostgresSource, report: Report) -> None:
    cfg = source.config
    where = redact_url(cfg.dsn)
    try:
        pool = await source._pool()
    except (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError) as err:
        report.add("reachable", True, where)
        report.add("credentials", False, str(err), "PostgreSQL refused the login: check the user in the dsn and the "
                   "password (password_file or the environment variable); pg_hba.conf must allow this host and user.")
        return
    except asyncpg.InvalidCatalogNameError as err:
        report.add("reachable", True, where)
        report.add("database", False, str(err), "The database in the dsn does not exist: fix its name.")
        return
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, SourceError) as err:
        text = str(err) or type(err).__name__
        report.add("reachable", False, f"{where}: {text}", f"Check that PostgreSQL runs at {where} and accepts "
                   "connections from this host (listen_addresses, pg_hba.conf, firewall)." + _tls_hint(text))
        return
    report.add("reachable", True, where)
    async with pool.acquire() as conn:
        user = str(await conn.fetchval("SELECT current_user"))
        report.add("credentials", True, f"logged in as {user}")
        tables = [table for preset in cfg.queues for table in reads(preset) + await _queue_tables(conn, preset)]
        if cfg.migrations is not None:
            tables.append(quote_ident(cfg.migrations.table))
        for table in dict.fromkeys(tables):
            await _table(conn, user, table, report)
        await _statistics(conn, [t for preset in cfg.queues for t in statistics_tables(preset)], report)
    reading = await _collection(source, report)
    if reading is None:
        return
    privileges_ok = report.ok  # a missing table or grant already explains its query's failure
    for query in reading.facts_of(QueryOutcome):
        if not query.ok and (privileges_ok or query.name == "tenants"):
            report.add(f"query {query.name}", False, query.error or "", _statement_fix(user, query.error or ""))
    for check in reading.facts_of(CheckRecord):
        report.add(f"check {check.name}", check.error is None, check.error or f"{check.count} rows",
                   _statement_fix(user, check.error or ""))


async def _table(conn: asyncpg.Connection, user: str, table: str, report: Report) -> None:
    """SELECT on the table and USAGE on its schema, from the catalogue (which every role may read, so
    a schema the role may not use is still found and named); the fix is the GRANTs that are missing."""
    parts = list(await conn.fetchval("SELECT parse_ident($1)", table))
    where = "n.nspname = $1 AND c.relname = $2" if len(parts) == 2 else (
        "c.relname = $1 AND n.nspname = ANY(current_schemas(true))")
    row = await conn.fetchrow(
        "SELECT n.nspname, has_schema_privilege(n.oid, 'USAGE'), has_table_privilege(c.oid, 'SELECT') "
        f"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {where} "
        "ORDER BY array_position(current_schemas(true), n.nspname) LIMIT 1", *parts)
    if row is None:
        report.add(f"may read {table}", False, "no such table or view", "The table does not exist: check `table` / "
                   "`schema` in the config, or run the library's migrations in this database.")
        return
    schema, usage, select = row
    grants = [f"GRANT USAGE ON SCHEMA {quote_ident(schema)} TO {quote_ident(user)};"] * (not usage) + [
        f"GRANT SELECT ON {table} TO {quote_ident(user)};"] * (not select)
    missing = " and ".join([f"no USAGE on schema {schema}"] * (not usage) + ["no SELECT privilege"] * (not select))
    report.add(f"may read {table}", not grants, missing or "SELECT granted",
               f"Run as the owner or a superuser (read-only grants): {' '.join(grants)}", " ".join(grants))


async def _queue_tables(conn: asyncpg.Connection, preset: Any) -> list[str]:
    """pgmq's per-queue tables (`q_<name>`, read through query_to_xml), from the catalogue: the role
    may not be allowed to read `meta` yet."""
    if getattr(preset, "preset", None) != "pgmq":
        return []
    rows = await conn.fetch("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = (parse_ident($1))[1] AND c.relkind IN ('r', 'p') "
                            "AND c.relname LIKE 'q\\_%' ORDER BY c.relname", quote_ident(preset.schema_))
    return [f"{quote_ident(preset.schema_)}.{quote_ident(r[0])}" for r in rows]


async def _statistics(conn: asyncpg.Connection, tables: list[str], report: Report) -> None:
    """Tables the presets read that have never been analyzed: their plans guess row counts and may read
    the whole history (seconds at 10M rows), so say which and what to run."""
    try:
        never = [str(r["relation"]) for r in await conn.fetch(unanalyzed(list(dict.fromkeys(tables))))]
    except asyncpg.PostgresError:  # a missing grant or table: already a finding above
        return
    report.add("table statistics", not never, "never analyzed: " + ", ".join(never) if never else "present",
               "Run " + " ".join(f"ANALYZE {t};" for t in never) + " as the table owner (autovacuum does it "
               "later on its own; a fresh restore or autovacuum = off never does).")


def _statement_fix(user: str, error: str) -> str:
    if "permission denied" in error:
        return f"The statement needs a privilege {user!r} lacks: GRANT SELECT on what it reads (see the error)."
    return "Fix the statement or the objects it reads (see the error)."


# ---------------------------------------------------------------------------------------------- nats


async def _nats(source: NatsSource, report: Report) -> None:
    cfg = source.config
    where = redact_url_list(cfg.url)
    try:
        nc = await asyncio.wait_for(source._connection(), cfg.timeout * 2)
    except (SourceError, OSError, TimeoutError, Exception) as err:  # nats-py raises its own Error subclasses
        text = str(err) or type(err).__name__
        if "authoriz" in text.lower() or isinstance(err, SourceDenied):
            report.add("reachable", True, where)
            report.add("credentials", False, text, "NATS refused the login: check user/password, token, creds_file "
                       "or nkeys_seed_file against the server's authorization block or operator setup.")
        else:
            report.add("reachable", False, f"{where}: {text}", f"Check that nats-server runs at {where} and that this "
                       "host may connect; a tls:// url or a server that requires TLS needs tls.ca_file for a "
                       "private CA." + _tls_hint(text))
        return
    v = nc.connected_server_version
    report.add("reachable", True, f"{where} (nats-server {v.major}.{v.minor}.{v.patch})")
    report.add("credentials", True, "logged in")
    await nc.flush()
    await asyncio.sleep(0.05)  # a refused subscription comes back as an asynchronous error
    if cfg.dead_letters.mode == "subscribe":
        denied = source._denied if source._denied and "subscription" in source._denied.lower() else None
        report.add("may subscribe to max-deliveries advisories", denied is None, denied or "allowed",
                   "Allow the user to subscribe to $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.> (or set "
                   "dead_letters.mode: off).")

    async def ask(subject: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """One API request; its finding says whether the user may send it (a 404 proves it may)."""
        check = f"may request {cfg.api_prefix}.{subject}"
        source._denied = None
        try:
            resp = await source._api(subject, body)
        except SourceDenied as err:
            report.add(check, False, str(err), f"Allow the user to publish to {cfg.api_prefix}.{_pattern(subject)} "
                       "(JetStream API requests; see 'Read-only' in docs/sources/nats.md).")
            return None
        except NatsTimeoutError:
            report.add(check, False, "no answer", "JetStream did not answer: is JetStream enabled for this account, "
                       "and is api_prefix right?")
            return None
        except NotFound:
            resp = {}
        except SourceError as err:
            report.add(check, False, str(err), "See the error.")
            return None
        report.add(check, True, "allowed")
        return resp

    await ask("INFO")
    listing = await ask("STREAM.LIST", {"offset": 0}) or {}
    streams = [s["config"]["name"] for s in listing.get("streams") or []]
    sample = streams[0] if streams else "EXAMPLE"
    await ask(f"STREAM.INFO.{sample}")
    await ask(f"CONSUMER.LIST.{sample}", {"offset": 0})
    kv = next((s for s in streams if s.startswith("KV_")), None)
    if kv is not None and (cfg.kv.count_keys or cfg.jobs is not None or cfg.agents is not None):
        await ask(f"STREAM.MSG.GET.{kv}", {"last_by_subj": f"$KV.{kv[3:]}.__jobqueue_doctor__"})
    await _collection(source, report)


def _pattern(subject: str) -> str:
    """`CONSUMER.LIST.JOBS` -> `CONSUMER.LIST.>`: the request for every stream, and nothing that writes."""
    parts = subject.split(".")
    return ".".join(parts[:-1]) + ".>" if len(parts) > 2 else subject


# ---------------------------------------------------------------------------------------------- running

DOCTORS: dict[str, Callable[[Any, Report], Awaitable[None]]] = {
    "redis": _redis, "postgres": _postgres, "nats": _nats,
}


async def diagnose(config: ExporterConfig) -> list[Report]:
    """One report per source, in config order; sources are examined one after another."""
    context = SourceContext(snapshot=Snapshot, shard=parse_shard(config.shard))
    reports = []
    for cfg in config.sources:
        report = Report(cfg.name, cfg.type)
        source = SOURCE_TYPES[cfg.type].load()(cfg, context)
        try:
            await asyncio.wait_for(DOCTORS.get(cfg.type, _generic)(source, report), max(30.0, cfg.timeout * 10))
        except TimeoutError:
            report.add("finished", False, "the examination did not finish in time", "The backend answers too "
                       "slowly; check its load and the network.")
        except Exception as err:  # one source's surprise never stops the report of the others
            report.add("finished", False, f"the examination stopped: {type(err).__name__}: {redact_text(str(err))}",
                       "This is a bug of the exporter or of a library it uses: report it with this line.")
        finally:
            await source.close()
        reports.append(report)
    return reports


def render_table(reports: list[Report]) -> str:
    """Plain text for a terminal: one line per check, a `fix:` line under each problem."""
    rows = [("SOURCE", "CHECK", "RESULT", "DETAIL")]
    fixes: dict[int, str] = {}
    for report in reports:
        for f in report.findings:
            rows.append((report.source, f.check, "ok" if f.ok else "PROBLEM", f.detail.replace("\n", " ")[:160]))
            if f.fix:
                fixes[len(rows) - 1] = f.fix
        if report.reads:
            r = report.reads
            rows.append((report.source, "would read", "", f"{r['tenants']} tenants, " * bool(r["tenants"])
                         + f"{r['queues']} queues "
                         f"({', '.join(r['queue_names'][:8])}{'...' if len(r['queue_names']) > 8 else ''}), "
                         f"{r['items_waiting']} items waiting"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
        if i in fixes:
            lines.append(" " * (widths[0] + 2) + "fix: " + fixes[i])
    problems = sum(not f.ok for r in reports for f in r.findings)
    lines.append("")
    lines.append("no problems found" if not problems else f"{problems} problem{'s' * (problems != 1)} found")
    return "\n".join(lines) + "\n"


def render_json(reports: list[Report]) -> str:
    return json.dumps({"ok": all(r.ok for r in reports), "sources": [
        {"source": r.source, "type": r.type, "ok": r.ok, "checks": [asdict(f) for f in r.findings], "reads": r.reads}
        for r in reports]}, indent=2) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="jobqueue-exporter doctor", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="YAML config file (default: the embedded one)")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    args = parser.parse_args(argv)
    setup_logging("error", "text")  # the findings say it all; sources' warnings would repeat them
    try:
        config = load_config(args.config) if args.config else default_config()
    except ConfigError as err:
        for line in err.lines():
            print(f"config error: {line}", file=sys.stderr)
        return 2
    reports = asyncio.run(diagnose(config))
    sys.stdout.write(render_json(reports) if args.format == "json" else render_table(reports))
    return 0 if all(r.ok for r in reports) else 1
