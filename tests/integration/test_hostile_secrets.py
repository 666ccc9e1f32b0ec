"""No secret reaches anything the exporter prints (issue 20, items 9 and 10).

A distinct secret is planted in every credential form the config accepts: URL user names (a NATS
token `nats://TOKEN@host`, an HTTP API key as user, a Redis user), URL passwords (a Redis password
holding a raw `/`, a NATS user's password), inline passwords and tokens, `*_file` contents, a NATS
creds file, a bearer token, API keys / shim tokens, the Alertmanager URL's userinfo, and the bcrypt
hash of the web config's basic auth. Sources point at real servers (the shared Redis, PostgreSQL,
NATS) and at dead ports, so both the success and the failure texts are produced. Then every line of
`--check-config`, `--once` and `doctor` (table and JSON), and of a daemon run at debug level, and
every body of /, /metrics, /openapi.json, /healthz, /readyz and the shims, is searched for each
secret and for each piece of it a parser could split off (the tail after a raw `/`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from base64 import b64encode
from pathlib import Path

import bcrypt
import pytest

from exporter.config import parse_config
from exporter.doctor import diagnose
from exporter.sources.http import HttpConfig
from tests.support.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
CMD = [sys.executable, "-m", "exporter"]
TAG = uuid.uuid4().hex[:8]


def secret(form: str) -> str:
    return f"S{form}{TAG}Z"


FORMS = ["redisuser", "redispw", "redispwtail", "redisinline", "redisfile", "natstoken", "natsinline",
         "natsuser", "natspw", "natsfile", "natscreds", "apikeyuser", "apikeypw", "bearer", "bearerfile",
         "pginline", "pgfile", "shimtoken", "shimfile", "shimenv", "amuser", "ampw", "basicpw"]
S = {form: secret(form) for form in FORMS}
BASIC_HASH = bcrypt.hashpw(S["basicpw"].encode(), bcrypt.gensalt(rounds=4)).decode()
# a NATS .creds file as `nsc` writes it; its JWT and seed are the secret here
CREDS = f"""-----BEGIN NATS USER JWT-----
eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.{S["natscreds"]}.sig
------END NATS USER JWT------

-----BEGIN USER NKEY SEED-----
SUA{S["natscreds"]}
------END USER NKEY SEED------
"""


def needles() -> dict[str, str]:
    found = dict(S)
    found["bcrypt-hash"] = BASIC_HASH
    found["bcrypt-tail"] = BASIC_HASH[7:]
    return found


def config(tmp: Path, dead: int, listen: int) -> str:
    files = {}
    for form in ("redisfile", "natsfile", "bearerfile", "pgfile", "shimfile"):
        files[form] = tmp / f"{form}.txt"
        files[form].write_text(S[form] + "\n")
    (tmp / "user.creds").write_text(CREDS)
    return f"""
listen: 127.0.0.1:{listen}
sources:
  - {{name: host, type: system}}
  - {{name: r-url, type: redis, url: "redis://{S['redisuser']}:{S['redispw']}/{S['redispwtail']}@127.0.0.1:{dead}/0",
     timeout: 1s, queues: [{{layout: laravel, prefix: "x{TAG}:", queues: [default]}}]}}
  - {{name: r-inline, type: redis, url: "redis://127.0.0.1:6379/0", password: "${{REDIS_PW}}", timeout: 1s,
     queues: [{{layout: laravel, prefix: "x{TAG}:", queues: [default]}}]}}
  - {{name: r-file, type: redis, url: "redis://127.0.0.1:{dead}/0", password_file: "{files['redisfile']}",
     timeout: 1s, queues: [{{layout: laravel, prefix: "x{TAG}:", queues: [default]}}]}}
  - {{name: n-token-url, type: nats, url: "nats://{S['natstoken']}@127.0.0.1:{dead}", timeout: 1s}}
  - {{name: n-token-url-live, type: nats, url: "nats://{S['natstoken']}@127.0.0.1:4222", timeout: 2s}}
  - {{name: n-userpw-url, type: nats, url: "nats://{S['natsuser']}:{S['natspw']}@127.0.0.1:{dead}", timeout: 1s}}
  - {{name: n-inline, type: nats, url: "nats://127.0.0.1:{dead}", token: "${{NATS_TOKEN}}", timeout: 1s}}
  - {{name: n-file, type: nats, url: "nats://127.0.0.1:{dead}", token_file: "{files['natsfile']}", timeout: 1s}}
  - {{name: n-creds, type: nats, url: "nats://127.0.0.1:{dead}", creds_file: "{tmp / 'user.creds'}", timeout: 1s}}
  - {{name: h-key, type: http, url: "http://{S['apikeyuser']}:{S['apikeypw']}@127.0.0.1:{dead}/health", timeout: 1s}}
  - {{name: h-key-live, type: http, url: "http://{S['apikeyuser']}@127.0.0.1:{listen}/healthz?k=1", timeout: 1s}}
  - {{name: h-bearer, type: http, url: "http://127.0.0.1:{dead}/x", bearer_token: "${{BEARER}}", timeout: 1s}}
  - {{name: h-bearer-file, type: http, url: "http://127.0.0.1:{listen}/metrics",
     bearer_token_file: "{files['bearerfile']}", timeout: 1s}}
  - {{name: p-url, type: postgres, dsn: "postgresql://postgres@127.0.0.1:{dead}/test?application_name=x",
     timeout: 1s}}
  - {{name: p-live, type: postgres, dsn: "postgresql://postgres@127.0.0.1:5432/test", password: "${{PG_PW}}",
     timeout: 2s}}
  - {{name: p-inline, type: postgres, dsn: "postgresql://postgres@127.0.0.1:{dead}/test", password: "${{PG_PW}}",
     timeout: 1s}}
  - {{name: p-file, type: postgres, dsn: "postgresql://postgres@127.0.0.1:{dead}/test",
     password_file: "{files['pgfile']}", timeout: 1s}}
systems:
  - {{name: sys, sources: [host, r-url, n-token-url, h-key, p-url]}}
auth:
  tokens:
    - {{name: t1, token: "${{SHIM_TOKEN}}", roles: [ops, super_admin], permissions: ["health:read"]}}
    - {{name: t2, token_file: "{files['shimfile']}", roles: [viewer], tenants: ["*"]}}
    - {{name: t3, token_env: SHIM_ENV, roles: [ops]}}
shims:
  platform: {{system: sys, alertmanager_url: "http://{S['amuser']}:{S['ampw']}@127.0.0.1:{dead}"}}
  status: {{system: sys, nats: n-token-url}}
  tenant: {{system: sys, source: r-url}}
  service: {{system: sys, services: {{redis: r-url, postgres: p-url}}, consistency: p-url}}
"""


ENV = {"REDIS_PW": S["redisinline"], "NATS_TOKEN": S["natsinline"], "BEARER": S["bearer"],
       "PG_PW": S["pginline"], "SHIM_TOKEN": S["shimtoken"], "SHIM_ENV": S["shimenv"]}


def leaks(where: str, text: str) -> list[str]:
    return [f"{where}: {name} ({value})" for name, value in needles().items() if value in text]


def run(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    return result.stdout + result.stderr


def get(port: int, path: str, headers: dict[str, str]) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return f"{answer.status} {dict(answer.headers)} {answer.read().decode(errors='replace')}"
    except urllib.error.HTTPError as err:
        return f"{err.code} {dict(err.headers)} {err.read().decode(errors='replace')}"


PATHS = ["/", "/metrics", "/openapi.json", "/healthz", "/readyz", "/api/v1/health", "/api/v1/landlord/health",
         "/api/v1/landlord/tenants", "/api/health/status", "/health", "/health/detailed", "/health/consistency",
         "/api/v1/platform/system/queues", "/api/v1/platform/system/queues/default/jobs",
         "/api/v1/platform/system/infrastructure/health", "/api/v1/platform/system/infrastructure/alerts",
         "/api/ops/plannings", "/nope"]


def test_no_planted_secret_in_any_output(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]  # bound, never listening: connections are refused
        listen = free_port()
        path = tmp_path / "config.yaml"
        path.write_text(config(tmp_path, dead, listen))
        web = tmp_path / "web.yml"
        web.write_text(f"basic_auth_users:\n  prom: {BASIC_HASH}\n")
        env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT)}
        found: list[str] = []
        out = run("--config", str(path), "--check-config", "--web.config.file", str(web), env=env)
        assert out.endswith("ok (18 sources)\n"), out
        found += leaks("--check-config", out)
        found += leaks("--once", run("--config", str(path), "--once", "--log-level", "debug", env=env))
        found += leaks("doctor", run("doctor", "--config", str(path), env=env))
        found += leaks("doctor json", run("doctor", "--config", str(path), "--format", "json", env=env))
        # the daemon at debug level, every body with and without credentials
        daemon = subprocess.Popen([*CMD, "--config", str(path), "--web.config.file", str(web), "--log-level",
                                   "debug"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        try:
            wait_for_port(listen, timeout=30)
            time.sleep(4)  # a few collections, failures included
            basic = "Basic " + b64encode(f"prom:{S['basicpw']}".encode()).decode()
            for headers in ({}, {"Authorization": basic},
                            {"Authorization": basic, "X-API-Key": S["shimtoken"], "x-ops-token": S["shimtoken"]}):
                for p in PATHS:
                    found += leaks(f"GET {p} {sorted(headers)}", get(listen, p, headers))
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                log, _ = daemon.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                log, _ = daemon.communicate(timeout=10)
        assert "debug" in log  # the log was at debug level
        found += leaks("daemon log", log)
    assert found == []


def test_redis_password_with_a_raw_slash_is_read_whole_and_never_echoed() -> None:
    url = f"redis://:{S['redispw']}/{S['redispwtail']}@127.0.0.1:6379/x"  # a bad database, after the secret
    with pytest.raises(Exception) as info:
        parse_config(f"sources:\n  - {{name: r, type: redis, url: '{url}', queues: []}}\n", "c.yaml", {})
    assert leaks("error", str(info.value)) == []
    assert "the database in the url must be a number, got 'x'" in str(info.value)


def test_check_config_refuses_url_credentials_with_a_bearer_token(tmp_path: Path) -> None:
    """Issue 20 item 10: this config was accepted, and doctor crashed on it."""
    path = tmp_path / "c.yaml"
    path.write_text(f'sources:\n  - {{name: h, type: http, url: "http://{S["apikeyuser"]}@127.0.0.1:1/x", '
                    'bearer_token: "${BEARER}"}\n')
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT)}
    for args in (["--check-config"], ["doctor"]):
        result = subprocess.run([*CMD, *args[:1], "--config", str(path), *args[1:]] if args == ["doctor"]
                                else [*CMD, "--config", str(path), *args], capture_output=True, text=True,
                                timeout=60, cwd=ROOT, env=env)
        assert result.returncode == 2
        assert result.stderr == (f"config error: {path}:2: sources[0]: the url carries credentials (user@ or "
                                 "user:password@) and an Authorization is also given (bearer_token or headers): "
                                 "keep one\n")


async def test_one_source_that_crashes_doctor_never_stops_the_report_of_the_others() -> None:
    """Issue 20 item 10: a source whose examination raises what no one expected (here aiohttp's
    ValueError for URL credentials plus an Authorization header, built past the validator as an older
    config version let through) is one finding; the sources after it are still examined."""
    config = parse_config("sources:\n  - {name: first, type: system}\n  - {name: last, type: system}\n",
                          "c.yaml", {})
    broken = HttpConfig.model_construct(**{**HttpConfig(name="web", type="http", url="http://127.0.0.1:1/x")
                                           .model_dump(), "url": f"http://{S['apikeyuser']}@127.0.0.1:1/x",
                                           "headers": {"Authorization": f"Bearer {S['bearer']}"}})
    config = config.model_copy(update={"sources": [config.sources[0], broken, config.sources[1]]})
    reports = await diagnose(config)
    assert [(r.source, r.ok) for r in reports] == [("first", True), ("web", False), ("last", True)]
    (finding,) = reports[1].findings
    assert finding.check == "finished"
    assert finding.detail == ("the examination stopped: ValueError: Cannot combine AUTHORIZATION header with AUTH "
                              "argument or credentials encoded in URL")
    assert leaks("doctor", str(reports)) == []
