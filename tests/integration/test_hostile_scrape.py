"""A scrape path the flood cannot delay (issue 20 item 6): `scrape_listen` serves /metrics, /healthz and
/readyz on a listener with a thread and event loop of its own, under the same web config (basic auth
here). A real daemon; bench/loadgen.py holds 2,000 busy connections on the main listener while the
scrape listener is scraped. Asserted: every scrape there answers 200 with the exposition, basic auth
still applies, nothing else is served there. The latency side by side with idle is measured in
bench/bench_hostile.py (timing belongs in bench/)."""

from __future__ import annotations

import base64
import resource
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt

from tests.support.servers import free_port, stop_daemon, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
AUTH = "Basic " + base64.b64encode(b"prom:scrape-pw").decode()


def get(port: int, path: str, auth: str | None = AUTH) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": auth} if auth else {})
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_the_scrape_listener_answers_under_a_flood_on_the_main_one(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    main, scrape = free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"listen: 127.0.0.1:{main}\nscrape_listen: 127.0.0.1:{scrape}\n"
                      "sources:\n  - {name: host, type: system, interval: 1s, timeout: 1s}\n")
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prom: {bcrypt.hashpw(b'scrape-pw', bcrypt.gensalt(rounds=4)).decode()}\n")
    daemon = subprocess.Popen([sys.executable, "-m", "exporter", "--config", str(config), "--web.config.file",
                               str(web)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(main, timeout=60)
        wait_for_port(scrape, timeout=10)
        flood = subprocess.Popen([sys.executable, str(ROOT / "bench" / "loadgen.py"), str(main), "--connections",
                                  "2000", "--seconds", "8", "--path", "/healthz"], cwd=ROOT,
                                 stdout=subprocess.PIPE, text=True,
                                 preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard)))
        try:
            time.sleep(3)  # the 2,000 connections are open and busy
            answers = [get(scrape, "/metrics") for _ in range(10)]
            others = [get(scrape, "/metrics", auth=None)[0], get(scrape, "/readyz")[0],
                      get(scrape, "/api/v1/health")[0]]
        finally:
            out, _ = flood.communicate(timeout=60)
    finally:
        log = stop_daemon(daemon)
    assert '"200"' in out  # the flood was real and served
    assert [status for status, _ in answers] == [200] * 10
    assert all('jobqueue_source_up{source="host",backend="system"}' in body for _, body in answers)
    assert others == [401, 200, 404]
    assert f"scrape listener address=127.0.0.1:{scrape}" in log
