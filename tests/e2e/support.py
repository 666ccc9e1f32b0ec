"""Real Prometheus, Alertmanager and exporter processes for the end-to-end tests, each in its own
temporary directory on a free loopback port, plus a webhook receiver that records notifications.

Every wait is bounded; every process is killed when its context ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.support.servers import free_port, terminate, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "jobqueue.rules.yml"
AM_EXAMPLE = ROOT / "alerts" / "alertmanager.example.yml"
T = TypeVar("T")


def binary(*names: str) -> str:
    """The first of `names` on PATH; absence fails the test with the package to install."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError(f"none of {names} found: apt-get install prometheus prometheus-alertmanager")


def wait_until(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.25) -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds saying what was awaited."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except OSError as err:  # a process still starting up
            last = err
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@contextlib.contextmanager
def process(args: list[str], workdir: Path, name: str, port: int, env: dict[str, str] | None = None,
            timeout: float = 20.0) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process with its output in `workdir/name.log`; wait for its port; always kill it."""
    log = (workdir / f"{name}.log").open("wb")
    proc = subprocess.Popen(args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    try:
        try:
            wait_for_port(port, timeout=timeout)
        except TimeoutError as err:
            raise AssertionError(f"{name} did not listen on {port}: {tail(workdir / f'{name}.log')}") from err
        yield proc
    finally:
        terminate(proc, 10)
        log.close()


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def scaled_rules(dst: Path, for_: str) -> Path:
    """The bundled rules with every `for:` set to `for_`; expressions, labels and annotations untouched.

    The real durations (1 to 15 minutes) are covered by the promtool unit tests; the end-to-end test
    proves the wiring (scrape, rule, Alertmanager, receiver) and must finish in seconds.
    """
    text = RULES.read_text()
    scaled, n = re.subn(r"(?m)^(\s+for:) \S+$", rf"\1 {for_}", text)
    assert n == text.count("alert:"), "every alert has a `for:` line"
    dst.write_text(scaled)
    return dst


def alertmanager_config(dst: Path, webhook: str) -> Path:
    """The example Alertmanager config with its receivers pointed at the test's webhook, and short timers."""
    config = yaml.safe_load(AM_EXAMPLE.read_text())
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{webhook}/{receiver['name']}"
    dst.write_text(yaml.safe_dump(config, sort_keys=False))
    return dst


class Webhook:
    """An Alertmanager webhook receiver: records (path, payload) of every notification."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[str, dict[str, Any]]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def alerts(self, path: str, alertname: str, status: str) -> list[dict[str, Any]]:
        """Alerts named `alertname` with `status` (firing/resolved) delivered to `path`."""
        return [a for p, body in list(self.received) if p == path for a in body["alerts"]
                if a["labels"].get("alertname") == alertname and a["status"] == status]


class Prometheus:
    """HTTP API client of a running Prometheus."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: Any) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params, doseq=True)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.get("/api/v1/query", query=expr)["result"]

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0) -> list[dict[str, Any]]:
        return self.get("/api/v1/query_range", query=expr, start=start, end=end, step=step)["result"]

    def series(self, match: str, start: float) -> list[dict[str, str]]:
        return self.get("/api/v1/series", **{"match[]": match, "start": start})

    def alerts(self) -> list[dict[str, Any]]:
        return self.get("/api/v1/alerts")["alerts"]


def prometheus_config(dst: Path, exporter_port: int, am_port: int, rules: Path) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [{"job_name": "jobqueue-exporter",
                            "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}],
    }
    dst.write_text(yaml.safe_dump(config, sort_keys=False))
    return dst


def exporter_args(config: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "exporter", "--config", str(config), "--listen", f"127.0.0.1:{port}"]


@contextlib.contextmanager
def monitoring(tmp: Path, exporter_port: int) -> Iterator[tuple[Prometheus, Webhook]]:
    """Alertmanager (the example config, receivers at a local webhook) and Prometheus (the bundled
    rules with `for: 2s`, scraping the exporter port every second); both killed on exit."""
    am_port, prom_port = free_port(), free_port()
    rules = scaled_rules(tmp / "jobqueue.rules.yml", "2s")
    with Webhook() as webhook, \
            process([binary("prometheus-alertmanager", "alertmanager"),
                     f"--config.file={alertmanager_config(tmp / 'am.yml', webhook.url)}",
                     f"--storage.path={tmp / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
                     "--cluster.listen-address=", "--log.level=warn"], tmp, "alertmanager", am_port), \
            process([binary("prometheus"),
                     f"--config.file={prometheus_config(tmp / 'prometheus.yml', exporter_port, am_port, rules)}",
                     f"--storage.tsdb.path={tmp / 'prom-data'}", f"--web.listen-address=127.0.0.1:{prom_port}",
                     "--rules.alert.resend-delay=1s", "--log.level=warn"], tmp, "prometheus", prom_port):
        yield Prometheus(prom_port), webhook
