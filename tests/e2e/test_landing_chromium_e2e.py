"""End to end: the landing page in a real headless Chromium. The DOM as the browser built it shows
every source with its state and last error, the systems' health, and only the enabled endpoints in
user words; a screenshot is kept as a CI artifact (build/artifacts/landing.png)."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.e2e.support import ROOT, exporter_args, process, wait_until
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
ARTIFACTS = ROOT / "build" / "artifacts"

CONFIG = """
sources:
  - {name: host, type: system, interval: 1s, timeout: 900ms}
  - {name: jobs-redis, type: redis, url: "redis://127.0.0.1:1/0", interval: 1s, timeout: 900ms,
     queues: [{layout: laravel, queues: [default]}]}
systems:
  - {name: platform, sources: [host, jobs-redis]}
shims:
  status: {system: platform}
"""


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "chromium not found: apt-get install chromium"
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
    return subprocess.run([path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--hide-scrollbars", *args], capture_output=True, text=True, timeout=120)


class Cells(HTMLParser):
    """Rows of the page's tables (by table id) and the endpoint list, as text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.endpoints: list[str] = []
        self.external: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._in_endpoints = False
        self._item: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("src", "href"):
            if a.get(key) and "://" in (a[key] or ""):
                self.external.append(a[key] or "")
        if tag == "link" or tag == "script":
            self.external.append(tag)
        if tag == "table":
            self._table = a.get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "ul" and a.get("id") == "endpoints":
            self._in_endpoints = True
        elif tag == "li" and self._in_endpoints:
            self._item = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "li" and self._item is not None:
            self.endpoints.append(" ".join("".join(self._item).split()))
            self._item = None
        elif tag == "ul":
            self._in_endpoints = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._item is not None:
            self._item.append(data)


def test_landing_page_in_headless_chromium(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yaml"
    config.write_text(CONFIG)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with process(exporter_args(config, port), tmp_path, "exporter", port, env={"PYTHONPATH": str(ROOT)}):
        def collected() -> bool:
            with urllib.request.urlopen(f"{url}readyz", timeout=5) as r:
                return r.status == 200

        wait_until("every source collected once", collected, timeout=30)
        dom = chromium("--dump-dom", url)
        assert dom.returncode == 0, dom.stderr
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "landing.png"
        shot.unlink(missing_ok=True)
        result = chromium(f"--screenshot={shot}", "--window-size=1280,900", url)
        assert result.returncode == 0, result.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    page = Cells()
    page.feed(dom.stdout)
    sources = {row[0]: row for row in page.tables["sources"][1:]}
    assert page.tables["sources"][0] == ["source", "kind", "reads", "state", "last success"]
    assert sources["host"][1:4] == ["This host", "", "up"] and sources["host"][4].endswith("s ago")
    kind, reads, state, last = sources["jobs-redis"][1:]
    assert (kind, reads, last) == ("Redis", "", "never")
    assert state.startswith("down") and "127.0.0.1:1" in state  # the last error, as the source said it
    assert page.tables["systems"][1][0:2] == ["platform", "unhealthy"]
    paths = [e.split(" ")[0] for e in page.endpoints]
    assert paths == ["/metrics", "/healthz", "/readyz", "/openapi.json", "/api/health/status"]
    assert all(" — " in e and len(e.split(" — ")[1]) > 20 for e in page.endpoints)
    text = dom.stdout.lower()
    assert "seed" not in text and "shared/" not in text
    assert page.external == []  # one self-contained page: no scripts, stylesheets or remote assets
