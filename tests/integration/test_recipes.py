"""The recipes of docs/architecture.md have no hidden places: a throwaway shim and a throwaway source type,
added to a copy of the repository by following the doc, touch exactly the files the doc names, and then
the table tests, the generated documents, the dashboards, `--check-config` and `--once` all hold."""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text()

SOURCE_MODULE = '''"""A throwaway source type (tests/integration/test_recipes.py): a fixed answer."""

from __future__ import annotations

from typing import Literal

from exporter.model import Reading, Sample
from exporter.sources.base import MetricDef, Source, SourceConfig


class DummyConfig(SourceConfig):
    """The answer to give."""

    type: Literal["dummy"]
    answer: int = 42


class DummySource(Source):
    """Reads nothing: answers its configured number."""

    backend = "dummy"
    config_model = DummyConfig
    metrics = (MetricDef("jobqueue_dummy_answer", "The configured answer."),)

    async def collect(self) -> Reading:
        assert isinstance(self.config, DummyConfig)
        return Reading(samples=(Sample("jobqueue_dummy_answer", (), self.config.answer),))
'''

SHIM_MODULE = '''"""A throwaway shim (tests/integration/test_recipes.py): GET /api/dummy names the source it watches."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exporter.health.config import Shim, SourceName
from exporter.web.schema import STR, answer, get_op, obj, ref
from exporter.web.shims.base import Reply, ShimDef, View, enabled, respond, view

routes = web.RouteTableDef()


class DummyShim(Shim):
    """Watches one source."""

    backend: SourceName


def dummy(v: View, shim: DummyShim) -> Reply:
    """The source's name and whether it is up."""
    state = v.snapshot.sources.get(shim.backend)
    return 200, {"backend": shim.backend, "up": "yes" if state and state.status.up else "no"}


@routes.get("/api/dummy")
async def get_dummy(request: web.Request) -> web.Response:
    shim = enabled(request, "dummy", DummyShim)
    return respond(dummy(view(request, shim), shim))


SCHEMAS: dict[str, Any] = {"Dummy": obj({"backend": STR, "up": STR})}
PATHS: dict[str, Any] = {
    "/api/dummy": get_op("The watched source.", {"200": answer("Its state.", ref("Dummy"))}, "dummy"),
}
ENDPOINTS = (("/api/dummy", "The watched source and whether it is up."),)

SHIM = ShimDef("dummy", DummyShim, routes, PATHS, SCHEMAS, endpoints=ENDPOINTS)
'''

PANEL = '''    b.add("stat", "Dummy answer", "The configured answer (jobqueue_dummy_answer).", "none",
          [(f"max by (source) ({sel('jobqueue_dummy_answer', SRC)})", "{{source}}")],
          w=8, instant=True, options=STAT)
'''


def copy_repository(to: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        if (ROOT / name).is_file():
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, to / name)


def edit(path: Path, after: str, line: str) -> None:
    """Insert `line` after the first line of `path` that starts with `after` (one table line)."""
    text = path.read_text()
    start = text.index(after)
    end = text.index("\n", start) + 1
    path.write_text(text[:end] + line + text[end:])


def run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    return subprocess.run([sys.executable, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=900)


def changed_files(repo: Path) -> set[str]:
    out = set()
    for path in repo.rglob("*"):
        name = str(path.relative_to(repo))
        if path.is_file() and "__pycache__" not in name and ".pytest_cache" not in name:
            original = ROOT / name
            if not original.exists() or not filecmp.cmp(path, original, shallow=False):
                out.add(name)
    return out


def test_the_doc_names_the_places_this_test_edits() -> None:
    """If the recipe text changes, this test must change with it (and the other way round)."""
    shim = DOC[DOC.index("**Add a JSON shim**"):DOC.index("**Add a source type**")]
    source = DOC[DOC.index("**Add a source type**"):]
    for place in ("exporter/web/shims/<key>.py", "SourceName", "ENDPOINTS", "`SHIMS` of",
                  "web/shims/__init__.py", "python3 -m exporter.web.openapi"):
        assert place in shim, place
    for place in ("exporter/sources/<type>.py", "`SOURCE_TYPES` of", "exporter/sources/__init__.py",
                  "docs/sources/<type>.md", "python3 -m exporter.docs README.md", "grafana/build.py",
                  "python3 grafana/build.py"):
        assert place in source, place
    assert re.search(r"Files: 3 \(a shim\)", shim) and re.search(r"Files: 5", source)


def test_a_throwaway_shim_and_source_type_touch_exactly_the_named_places(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    copy_repository(repo)
    # the source type: its module, one table line, its document, the regenerated catalogue, a panel
    (repo / "exporter/sources/dummy.py").write_text(SOURCE_MODULE)
    edit(repo / "exporter/sources/__init__.py", "SOURCE_TYPES: dict[str, SourceType] = {",
         '    "dummy": SourceType("exporter.sources.dummy:DummyConfig", "exporter.sources.dummy:DummySource"),\n')
    (repo / "docs/sources/dummy.md").write_text("# `dummy` sources\n\nA fixed answer: `jobqueue_dummy_answer`.\n")
    assert run(repo, "-m", "exporter.docs", "README.md").returncode == 0
    build = repo / "grafana/build.py"
    row = '    b.row("Exporter process")\n'
    build.write_text(build.read_text().replace(row, PANEL + row, 1))
    assert run(repo, "grafana/build.py").returncode == 0
    # the shim: its module, one table line, the regenerated OpenAPI document
    (repo / "exporter/web/shims/dummy.py").write_text(SHIM_MODULE)
    edit(repo / "exporter/web/shims/__init__.py", "SHIMS: tuple[ShimRef, ...] = (",
         '    ShimRef("dummy", "exporter.web.shims.dummy", ("/api/dummy",)),\n')
    openapi = run(repo, "-m", "exporter.web.openapi")
    assert openapi.returncode == 0, openapi.stderr
    (repo / "exporter/web/openapi.json").write_text(openapi.stdout)

    assert changed_files(repo) == {
        "exporter/sources/dummy.py", "exporter/sources/__init__.py", "docs/sources/dummy.md", "README.md",
        "grafana/build.py", "grafana/dashboards/host.json",
        "exporter/web/shims/dummy.py", "exporter/web/shims/__init__.py", "exporter/web/openapi.json",
    }
    checks = run(repo, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "tests/unit/test_registries.py",
                 "tests/unit/test_docs.py", "tests/unit/test_layers.py", "tests/unit/test_landing.py",
                 "tests/unit/test_dashboards.py", "tests/unit/test_renderer.py",
                 "tests/integration/test_openapi.py::test_checked_in_document_is_current")
    assert checks.returncode == 0, checks.stdout[-3000:] + checks.stderr[-2000:]

    config = tmp_path / "config.yaml"
    config.write_text("sources:\n  - {name: answer, type: dummy, answer: 7}\n"
                      "systems:\n  - {name: s, sources: [answer]}\n"
                      "shims:\n  dummy: {system: s, backend: answer}\n")
    once = run(repo, "-m", "exporter", "--config", str(config), "--once")
    assert once.returncode == 0, once.stderr
    assert '\njobqueue_dummy_answer{source="answer"} 7\n' in once.stdout
    assert "# HELP jobqueue_dummy_answer The configured answer.\n" in once.stdout
    config.write_text(config.read_text().replace("backend: answer", "backend: nosuch"))
    refused = run(repo, "-m", "exporter", "--config", str(config), "--check-config")
    assert refused.returncode == 2
    reason = r"config error: .*config.yaml:6: shims\.dummy\.backend: unknown source 'nosuch'"
    assert re.search(reason, refused.stderr), refused.stderr
