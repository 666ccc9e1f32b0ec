"""The command line as a user runs it: check a config, collect once, run and stop on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis

from tests.support.servers import free_port, wait_for_port

CMD = [sys.executable, "-m", "exporter"]
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=60, cwd=ROOT, **kw)


def laravel_config(prefix: str, url: str = "redis://127.0.0.1:6379/0") -> str:
    return f"""
listen: 127.0.0.1:{free_port()}
sources:
  - name: cache
    type: redis
    url: {url}
    timeout: 2s
    queues: [{{layout: laravel, prefix: "{prefix}", queues: [default]}}]
"""


def test_check_config_ok(write_config) -> None:
    path = write_config(laravel_config("x:"))
    result = run("--config", str(path), "--check-config")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{path}: ok (1 sources)\n", "")


def test_check_config_reports_every_problem_and_exits_non_zero(write_config) -> None:
    path = write_config("sources:\n  - name: cache\n    type: redis\n    urll: x\n    queues: [{layout: lavarel}]\n")
    result = run("--config", str(path), "--check-config")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"config error: {path}:5: sources[0].queues[0]: Input tag 'lavarel'")
    assert lines[1] == f"config error: {path}:4: sources[0].urll: unknown key (misspelled?)"
    assert result.stdout == ""


def test_bad_listen_flag(write_config) -> None:
    result = run("--config", str(write_config(laravel_config("x:"))), "--listen", "nowhere", "--check-config")
    assert result.returncode == 2
    assert result.stderr.strip() == "config error: --listen: listen must be HOST:PORT, got 'nowhere'"


def test_once_prints_the_exposition(write_config, prefix: str, redis_client: redis.Redis) -> None:
    redis_client.rpush(f"{prefix}queues:default", json.dumps({"createdAt": int(time.time()) - 30}))
    result = run("--config", str(write_config(laravel_config(prefix))), "--once")
    assert result.returncode == 0, result.stderr
    assert 'jobqueue_depth{source="cache",tenant="",queue="default"} 1\n' in result.stdout
    assert 'jobqueue_source_up{source="cache",backend="redis"} 1\n' in result.stdout


def test_once_with_an_unreachable_backend_exits_1_and_says_up_0(write_config) -> None:
    path = write_config(laravel_config("x:", f"redis://127.0.0.1:{free_port()}/0"))
    result = run("--config", str(path), "--once")
    assert result.returncode == 1
    assert 'jobqueue_source_up{source="cache",backend="redis"} 0\n' in result.stdout
    assert "jobqueue_depth" not in result.stdout
    assert "collect failed" in result.stderr and "kind=unreachable" in result.stderr


def test_daemon_serves_then_stops_cleanly_on_sigterm(write_config, prefix: str) -> None:
    port = free_port()
    password = "never-log-this-secret"
    path = write_config(laravel_config(prefix, f"redis://:{password}@127.0.0.1:{free_port()}/0"))
    proc = subprocess.Popen([*CMD, "--config", str(path), "--listen", f"127.0.0.1:{port}", "--log-format", "json"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, 20)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as resp:
            assert json.load(resp) == {"status": "ok"}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as resp:
                if b"jobqueue_source_up" in resp.read():
                    break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0
    events = [json.loads(line) for line in stderr.splitlines()]
    # collection runs on a thread of its own from start-up, so its first failure may be logged before this
    listening = [e for e in events if e["event"] == "listening"]
    assert len(listening) == 1 and listening[0]["address"] == f"127.0.0.1:{port}"
    assert any(e["event"] == "collect failed" and e["source"] == "cache" for e in events)
    assert events[-1]["event"] == "stopping"
    assert password not in stderr
