"""Reload (SIGHUP, POST /-/reload) and the daemon's life: unchanged sources keep running (same object,
same task, counters going on), changed ones restart, removed ones vanish; a bad new config keeps the
old one and says 0; env vars for every flag (a port in use at start: tests/integration/test_hostile_cli.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import redis
from aiohttp.test_utils import TestClient, TestServer

from exporter.cli import build_scheduler, parse_args
from exporter.config import load_config
from exporter.reload import Reloader
from exporter.web.app import build_app
from tests.support.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


def config(prefix: str, queues: str = "[default]", extra: str = "") -> str:
    return f"""
sources:
  - {{name: host, type: system, interval: 1s, timeout: 900ms}}
  - name: cache
    type: redis
    interval: 2s
    timeout: 2s  # generous: the shared machine may be loaded by other test runs
    queues: [{{layout: laravel, prefix: "{prefix}", queues: {queues}}}]
{extra}"""


def value(body: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", body, re.M)
    assert match, f"{series} not in the exposition"
    return float(match.group(1))


async def scrape_until(client: TestClient, series: str, expected: float) -> str:
    """The first /metrics body in which `series` reads `expected` (bounded): the daemon publishes a new
    exposition once its gzip is built, so a scrape right after a change may still get the previous one."""
    async with asyncio.timeout(30):
        while True:
            body = await (await client.get("/metrics")).text()
            match = re.search(rf"^{re.escape(series)} (\S+)$", body, re.M)
            if match and float(match.group(1)) == expected:
                return body
            await asyncio.sleep(0.05)


async def until(probe: Callable[[], bool]) -> None:
    """Wait for the scheduler's own tasks to get somewhere (bounded)."""
    async with asyncio.timeout(90):
        while not probe():  # noqa: ASYNC110 - polling state that other tasks change
            await asyncio.sleep(0.1)


async def test_reload_keeps_unchanged_sources_and_refuses_a_bad_config(
        tmp_path: Path, prefix: str, redis_client: redis.Redis) -> None:
    redis_client.rpush(f"{prefix}queues:default", json.dumps({"createdAt": int(time.time()) - 30}))
    redis_client.rpush(f"{prefix}queues:mail", json.dumps({}), json.dumps({}))
    path = tmp_path / "config.yaml"
    path.write_text(config(prefix))
    conf = load_config(path)
    scheduler = build_scheduler(conf)
    app = build_app(conf, scheduler)
    reloader = Reloader(app, scheduler, str(path), time.time)
    async with TestClient(TestServer(app)) as client:
        await until(lambda: all(s.status.collections >= 2 for s in scheduler.snapshot.sources.values()))
        host, cache = scheduler.sources
        host_task = scheduler._tasks["host"]
        before = scheduler.snapshot.sources["host"].status.collections

        # the redis source changes (a second queue), a new source appears, host is untouched
        path.write_text(config(prefix, "[default, mail]")
                        + "  - {name: host2, type: system, interval: 1s, timeout: 900ms}\n")
        resp = await client.post("/-/reload")
        assert (resp.status, await resp.json()) == (200, {"status": "reloaded"}), await resp.text()
        assert scheduler.sources[0] is host and scheduler._tasks["host"] is host_task
        assert scheduler.sources[1] is not cache and scheduler.sources[1].name == "cache"
        assert [s.name for s in scheduler.sources] == ["host", "cache", "host2"]
        assert scheduler.snapshot.sources["host"].status.collections >= before  # counting on, not reset
        await until(lambda: scheduler.snapshot.sources["host2"].status.collections > 0
                    and scheduler.snapshot.sources["cache"].status.up)
        body = await scrape_until(client, 'jobqueue_source_up{source="host2",backend="system"}', 1)
        assert value(body, 'jobqueue_depth{source="cache",tenant="",queue="mail"}') == 2
        assert value(body, 'jobqueue_source_up{source="host2",backend="system"}') == 1
        assert value(body, "jobqueue_exporter_config_last_reload_successful") == 1

        # a bad config: refused with the reason, everything keeps running, the gauge says 0
        good_at = value(body, "jobqueue_exporter_config_last_reload_success_timestamp_seconds")
        path.write_text(config(prefix) + "  - {name: host, type: system}\n")
        resp = await client.post("/-/reload")
        answer = await resp.json()
        assert resp.status == 500 and answer["status"] == "error"
        assert answer["error"].startswith(str(path)) and "two sources are named 'host'" in answer["error"]
        assert [s.name for s in scheduler.sources] == ["host", "cache", "host2"]
        body = await scrape_until(client, "jobqueue_exporter_config_last_reload_successful", 0)
        assert value(body, "jobqueue_exporter_config_last_reload_successful") == 0
        assert value(body, "jobqueue_exporter_config_last_reload_success_timestamp_seconds") == good_at
        assert 'source="host2"' in body

        # removing a source drops its series from the next exposition (the one the reload builds)
        path.write_text(config(prefix))
        assert (await client.post("/-/reload")).status == 200
        body = await scrape_until(client, "jobqueue_exporter_config_last_reload_successful", 1)
        assert 'source="host2"' not in body and value(body, "jobqueue_exporter_config_last_reload_successful") == 1
        assert (await client.get("/-/reload")).status == 405
    assert reloader.successful


async def test_a_reload_switches_on_a_shim_the_start_did_not_name(tmp_path: Path) -> None:
    """Every shim's paths are mounted from the shim table and its module imported on use: before the
    reload the platform's paths answer 404; after it the shim answers, rate-limited as the reloaded
    config says (its limiter is made on its first request)."""
    host = "sources:\n  - {name: host, type: system, interval: 1s, timeout: 900ms}\n"
    path = tmp_path / "config.yaml"
    path.write_text(host)
    conf = load_config(path)
    scheduler = build_scheduler(conf)
    app = build_app(conf, scheduler)
    Reloader(app, scheduler, str(path), time.time)
    url = "/api/v1/platform/system/infrastructure/health"
    async with TestClient(TestServer(app)) as client:
        assert (await client.get(url)).status == 404
        path.write_text(host + "systems: [{name: s, sources: [host]}]\n"
                        "shims:\n  platform: {system: s, rate_limit: {requests: 1, per: 60s}}\n")
        assert (await client.post("/-/reload")).status == 200
        first = await client.get(url)
        assert (first.status, (await first.json())["error"]["code"]) == (401, "UNAUTHORIZED")  # no token
        second = await client.get(url)
        assert (second.status, second.headers["Retry-After"]) == (429, "60")


async def test_a_reload_that_changes_the_platform_rate_limit_applies_it_at_once(tmp_path: Path) -> None:
    """Before: the limiter was made on the first request and kept, so a reload to another
    `rate_limit` still answered 429 by the old one (1 a minute, Retry-After 60). A reload that keeps
    the limit keeps the counts: the client that used its bucket up stays limited."""
    def shim(rate_limit: str, timeout: str = "2s") -> str:
        return ("sources:\n  - {name: host, type: system, interval: 1s, timeout: 900ms}\n"
                "systems: [{name: s, sources: [host]}]\n"
                f"shims:\n  platform: {{system: s, rate_limit: {rate_limit}, jobs_timeout: {timeout}}}\n")

    path = tmp_path / "config.yaml"
    path.write_text(shim("{requests: 1, per: 60s}"))
    conf = load_config(path)
    scheduler = build_scheduler(conf)
    app = build_app(conf, scheduler)
    Reloader(app, scheduler, str(path), time.time)
    url = "/api/v1/platform/system/infrastructure/health"
    async with TestClient(TestServer(app)) as client:
        statuses = [(await client.get(url)).status for _ in range(2)]
        assert statuses == [401, 429]  # no token: limited by address, one a minute
        path.write_text(shim("{requests: 3, per: 30s}"))  # a token every 10 s
        assert (await client.post("/-/reload")).status == 200
        statuses = [(await client.get(url)).status for _ in range(3)]
        assert statuses == [401, 401, 401]  # three fit now
        fourth = await client.get(url)
        assert fourth.status == 429 and 8 <= int(fourth.headers["Retry-After"]) <= 10  # the 10 s window
        path.write_text(shim("{requests: 3, per: 30s}", timeout="3s"))  # the shim changes, its limit not
        assert (await client.post("/-/reload")).status == 200
        fifth = await client.get(url)
        assert fifth.status == 429 and 8 <= int(fifth.headers["Retry-After"]) <= 10  # counts kept


def test_every_flag_has_an_environment_variable() -> None:
    env = {"JOBQUEUE_EXPORTER_CONFIG": "/c.yaml", "JOBQUEUE_EXPORTER_LISTEN": ":9999",
           "JOBQUEUE_EXPORTER_WEB_CONFIG_FILE": "/w.yml", "JOBQUEUE_EXPORTER_LOG_LEVEL": "debug",
           "JOBQUEUE_EXPORTER_LOG_FORMAT": "json"}
    args = parse_args([], env)
    assert (args.config, args.listen, args.web_config_file, args.log_level, args.log_format) == \
        ("/c.yaml", ":9999", "/w.yml", "debug", "json")
    args = parse_args(["--config", "/flag.yaml", "--listen", ":1", "--log-level", "error"], env)
    assert (args.config, args.listen, args.log_level) == ("/flag.yaml", ":1", "error")  # the flag wins
    args = parse_args([], {})
    assert (args.config, args.listen, args.web_config_file, args.log_level, args.log_format) == \
        (None, None, None, "info", "text")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def test_sighup_reloads_a_running_daemon_configured_from_the_environment(
        tmp_path: Path, prefix: str, redis_client: redis.Redis) -> None:
    redis_client.rpush(f"{prefix}queues:mail", json.dumps({}))
    path, port, log = tmp_path / "config.yaml", free_port(), tmp_path / "exporter.log"
    path.write_text(config(prefix))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JOBQUEUE_EXPORTER_CONFIG": str(path),
           "JOBQUEUE_EXPORTER_LISTEN": f"127.0.0.1:{port}", "JOBQUEUE_EXPORTER_LOG_FORMAT": "json"}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "exporter"], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=ROOT)
        try:
            wait_for_port(port, timeout=20)
            path.write_text(config(prefix, "[default, mail]"))
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 60
            while 'queue="mail"' not in scrape(port):
                assert time.monotonic() < deadline, "the reloaded queue never appeared"
                time.sleep(0.2)
            path.write_text("sources: []\n")
            proc.send_signal(signal.SIGHUP)
            while "jobqueue_exporter_config_last_reload_successful 0" not in scrape(port):
                assert time.monotonic() < deadline + 60, "the refused reload never showed"
                time.sleep(0.2)
            assert 'queue="mail"' in scrape(port) and proc.poll() is None
        finally:
            proc.terminate()
            assert proc.wait(timeout=15) == 0
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(e["event"] == "config reloaded" for e in events)
    (refused,) = [e for e in events if e["event"] == "config not reloaded; the previous one keeps running"]
    assert refused["level"] == "error" and "sources: List should have at least 1 item" in refused["error"]


def test_reload_is_behind_the_web_auth(tmp_path: Path) -> None:
    """POST /-/reload needs the basic-auth credentials when the web config sets users."""
    import base64

    import bcrypt

    (tmp_path / "config.yaml").write_text("sources:\n  - {name: host, type: system}\n")
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users: {{ops: {bcrypt.hashpw(b'pw', bcrypt.gensalt(4)).decode()}}}\n")
    port, log = free_port(), tmp_path / "exporter.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "exporter", "--config", str(tmp_path / "config.yaml"),
                                 "--listen", f"127.0.0.1:{port}", "--web.config.file", str(web)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            wait_for_port(port, timeout=20)
            url = f"http://127.0.0.1:{port}/-/reload"
            try:
                urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5)
                raise AssertionError("reload without credentials was accepted")
            except urllib.error.HTTPError as err:
                assert (err.code, err.headers["WWW-Authenticate"]) == (401, 'Basic realm="jobqueue-exporter"')
            auth = {"Authorization": "Basic " + base64.b64encode(b"ops:pw").decode()}
            with urllib.request.urlopen(urllib.request.Request(url, method="POST", headers=auth), timeout=10) as resp:
                assert (resp.status, json.load(resp)) == (200, {"status": "reloaded"})
        finally:
            proc.terminate()
            proc.wait(timeout=15)
