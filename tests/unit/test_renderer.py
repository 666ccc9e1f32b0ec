"""One exposition writer, owned by the daemon: `exporter.metrics.Renderer`.

Every producer hands it typed records (a source's `Reading`, health's, the reloader's and the
scheduler's `Sample`s); no other module writes exposition text, nothing it keeps lives in a module,
and health is wired to the scheduler in one place.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from exporter import metrics
from exporter.metrics import TEXT, Renderer
from exporter.model import QueueStats, Reading, Sample
from tests.support import builders

PACKAGE = Path(__file__).resolve().parents[2] / "exporter"
NOW = builders.NOW
SAMPLE_LINE = re.compile(r"^jobqueue_\w+(\{| $)")


def module_state() -> dict[str, tuple[int, int]]:
    """id and size of every container the metrics module holds."""
    return {name: (id(value), len(value)) for name, value in vars(metrics).items()
            if isinstance(value, dict | list | set)}


def test_rendering_changes_no_module_state_and_renderers_share_nothing() -> None:
    before = module_state()
    up = builders.status("r", True, NOW)
    one = Reading(queues=(QueueStats("q", 3, "a", NOW - 5), QueueStats("q", 1, "b")))
    other = Reading(queues=(QueueStats("q", 9, "a", NOW - 1), QueueStats("q", 1, "b")))
    first, second = Renderer(), Renderer()
    assert first.source(up, one, {}) == Renderer().source(up, one, {})
    second.source(up, other, {})  # another daemon's renderer, the same source name
    assert first.source(up, one, {}) == Renderer().source(up, one, {})
    assert module_state() == before


def test_every_producer_hands_the_renderer_samples() -> None:
    """Health, reload and the exporter's own series arrive as `Sample`s and come out in one exposition."""
    from exporter.cli import build_scheduler
    from exporter.config import parse_config

    config = parse_config('shard: "2/4"\nsources: [{name: h, type: system}]\n'
                          'systems: [{name: shop, sources: [h]}]\n', "c", {})
    scheduler = build_scheduler(config)
    scheduler.producers.append(lambda snapshot: [Sample("jobqueue_exporter_config_last_reload_successful", (), 0)])
    scheduler.refresh()
    text = scheduler.exposition.body(TEXT).decode()
    assert '\njobqueue_health_status{system="shop",status="ok"} 1\n' in text
    assert "\njobqueue_exporter_config_last_reload_successful 0\n" in text
    assert "\njobqueue_exporter_shard_ordinal 2\n" in text and "\njobqueue_exporter_total_shards 4\n" in text


def _modules() -> dict[str, ast.Module]:
    return {str(p.relative_to(PACKAGE.parent)): ast.parse(p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_but_the_renderer_writes_exposition_text() -> None:
    for path, tree in _modules().items():
        if path == "exporter/metrics.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "exporter.metrics":
                names = {a.name for a in node.names}
                assert not names & {"escape", "number", "sample_line"}, f"{path} formats exposition lines"
            if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                head = str(node.values[0].value)
                assert not SAMPLE_LINE.match(head) and "# TYPE " not in head, f"{path}:{node.lineno} writes a line"


def test_health_is_wired_in_one_place() -> None:
    wiring = [path for path, tree in _modules().items() for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module == "exporter.health.evaluation"
              and any(a.name == "attach" for a in node.names)]
    assert wiring == ["exporter/cli.py"]


def test_a_render_finishing_after_a_reload_removed_its_source_keeps_nothing() -> None:
    """A reload cancels a removed source's task, but a render already running on the RENDER pool cannot
    be cancelled: it finishes after the reload and must not leave that source's memo (its queues and
    their encoded lines, tens of MB at 10k tenants) in the renderer for the daemon's lifetime."""
    import asyncio

    from exporter.cli import build_scheduler
    from exporter.config import parse_config

    config = parse_config("sources: [{name: h, type: system}, {name: gone, type: system}]\n", "c", {})
    scheduler = build_scheduler(config)
    status = builders.status("gone", True, NOW)
    reading = Reading(queues=(QueueStats("q", 3, "a", NOW - 5),))
    scheduler.renderer.source(status, reading, {})  # its previous render: a memo, as intended
    assert 'source="gone"' in scheduler.renderer._memo
    asyncio.run(scheduler.replace_sources([s for s in scheduler.sources if s.name == "h"]))
    assert 'source="gone"' not in scheduler.renderer._memo
    scheduler.renderer.source(status, reading, {})  # the render that was in flight hands in late
    assert 'source="gone"' not in scheduler.renderer._memo
