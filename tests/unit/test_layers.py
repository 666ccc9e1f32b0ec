"""The layers run one way: model <- sources <- scheduler/metrics <- health <- web, with no import cycle.

Read from the source with `ast` (imports under TYPE_CHECKING count too: a type is a dependency).
config.py, cli.py, preflight.py (start-up checks), doctor.py (the `doctor` subcommand), reload.py (a running
daemon's new config), healthcheck.py (the container's probe command), __main__.py and docs.py are the
composition root and may import everything;
nothing imports them but the root itself.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "exporter"
ROOT = frozenset({"exporter.config", "exporter.cli", "exporter.preflight", "exporter.doctor", "exporter.reload",
                  "exporter.healthcheck", "exporter.__main__", "exporter.docs"})
# Lowest first; a module may import its own layer and the layers below it.
LAYERS = (
    ("model", ("exporter.model", "exporter.facts", "exporter.values", "exporter.log", "exporter.untrusted",
               "exporter.pools", "exporter.redact")),
    ("sources", ("exporter.sources",)),
    ("collection", ("exporter.scheduler", "exporter.metrics")),
    ("health", ("exporter.health",)),
    ("web", ("exporter.web",)),
)
BACKEND_CLIENTS = ("redis", "asyncpg", "nats", "psutil")
# The one module of the source layer the layers above may name: the interface and its records.
SOURCE_INTERFACE = frozenset({"exporter.sources.base"})


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, name: str) -> set[str]:
    """Every module `path` imports (absolute, `from x import y` counted as x and as x.y when that is a module)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                base = ".".join(anchor[: len(anchor) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    known = modules()
    return {m for m in out if m in known or not m.startswith("exporter")}


def layer(name: str) -> int | None:
    if name in ROOT:
        return None
    if name == "exporter":  # the package itself: its version, importing nothing of the project
        return 0
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    assert best is not None, f"{name} belongs to no layer: add it to LAYERS"
    return best[0]


GRAPH = {name: {m for m in imports(path, name) if m.startswith("exporter")} for name, path in modules().items()}
EXTERNAL = {name: {m for m in imports(path, name) if not m.startswith("exporter")}
            for name, path in modules().items()}


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_imports_follow_the_arrows(name: str) -> None:
    mine = layer(name)
    for target in sorted(GRAPH[name]):
        if target == "exporter" or (target in ROOT and mine is not None):
            assert target == "exporter", f"{name} imports the composition root {target}"
            continue
        theirs = layer(target)
        if mine is None or theirs is None:
            continue
        assert theirs <= mine, f"{name} ({LAYERS[mine][0]}) imports {target} ({LAYERS[theirs][0]})"


@pytest.mark.parametrize("name", sorted(n for n in GRAPH if n.startswith(("exporter.web", "exporter.health"))))
def test_upper_layers_use_the_source_interface_only(name: str) -> None:
    """Web and health name no source module but the interface, and no backend client library."""
    for target in GRAPH[name]:
        if target.startswith("exporter.sources"):
            assert target in SOURCE_INTERFACE or target == "exporter.sources", f"{name} imports {target}"
    for target in EXTERNAL[name]:
        assert target.split(".")[0] not in BACKEND_CLIENTS, f"{name} imports the backend client {target}"
    if name.startswith("exporter.web"):  # an HTTP client to a backend or Alertmanager belongs below web
        tree = ast.parse(modules()[name].read_text())
        used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        assert "ClientSession" not in used, f"{name} opens an aiohttp.ClientSession"


def test_no_import_cycles() -> None:
    graph = {n: {t for t in targets if t != n and t != "exporter"} for n, targets in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


def test_the_test_sees_a_violation() -> None:
    """The checker itself: a source importing health is caught."""
    assert layer("exporter.sources.redis.jobs") is not None
    assert layer("exporter.health.data") > layer("exporter.sources.redis.jobs")  # type: ignore[operator]  # both are layered


def test_every_type_ignore_says_why() -> None:
    """`# type: ignore[code]  # reason` on the same line, never a bare one."""
    bare = [f"{p.relative_to(PACKAGE.parent)}:{n}" for p in sorted(PACKAGE.rglob("*.py"))
            for n, line in enumerate(p.read_text().splitlines(), 1)
            if "type: ignore" in line and not re.search(r"type: ignore\[[a-z-]+(, [a-z-]+)*\]  # \S", line)]
    assert bare == []
