"""The layout recipe of docs/architecture.md has no hidden place.

A copy of the project gets a throwaway layout exactly as the recipe says (one module under
`sources/redis/layouts/`, one entry in the `LAYOUTS` table) and nothing else; in that copy the
tests that guard the tables and the config (registries, layers, the config's tag list) pass, and a
source reads the new layout from the shared Redis (own keys, deleted after).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import redis

from tests.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parents[2]

MODULE = '''"""A throwaway layout: a list of JSON items with a `:later` sorted set beside it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from exporter.model import QueueStats
from exporter.sources.redis.layouts.base import Layout, Parsed, Plan, Reads, Results, count, fill_tenant, head_time
from exporter.sources.redis.ops import Head, Llen, Zcard


class ThrowawayLayout(Layout):
    """Queues `<prefix><queue>` (oldest at the head, time in `at`) and `<prefix><queue>:later`."""

    layout: Literal["throwaway"]
    queues: list[str] = ["default"]
    prefix: str = "throwaway:"

    def templates(self) -> Sequence[str]:
        return (self.prefix,)

    def plan(self, tenant: str, found: Results, now: float) -> Plan:
        p = fill_tenant(self.prefix, tenant)
        reads: Reads = {}
        for queue in self.queues:
            reads[queue, "depth"] = Llen(p + queue)
            reads[queue, "head"] = Head(p + queue, fields="at", scan=self.scan, kind=self.stamp_kind("s", now))
            reads[queue, "later"] = Zcard(p + queue + ":later")

        def parse(r: Results, now: float, out: Parsed) -> None:
            for queue in self.queues:
                oldest = head_time(r[queue, "head"], "s", out, self.latest(now))
                later = (("later", count(r[queue, "later"])),)
                out.queues.append(QueueStats(queue, count(r[queue, "depth"]), tenant, oldest, later))

        return Plan(reads, parse)
'''

COLLECT = '''
import asyncio, json, sys
from exporter.config import parse_config
from exporter.model import Snapshot
from exporter.sources.base import SourceContext
from exporter.sources.redis import RedisSource

config = parse_config(sys.argv[1], "c.yaml", {})
source = RedisSource(config.sources[0], SourceContext(snapshot=lambda: Snapshot()), clock=lambda: 1_700_000_000.0)
reading = asyncio.run(source.collect())
print(json.dumps([[q.queue, q.depth, q.oldest_timestamp, list(map(list, q.states))] for q in reading.queues]
                 + [reading.malformed]))
'''


def _copy(target: Path) -> None:
    """The project as the recipe finds it: the package, the tests (without node's packages), pyproject."""
    skip = shutil.ignore_patterns("__pycache__", "node_modules", "*.pyc")
    shutil.copytree(ROOT / "exporter", target / "exporter", ignore=skip)
    shutil.copytree(ROOT / "tests", target / "tests", ignore=skip)
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")


def _follow_the_recipe(target: Path) -> set[str]:
    """The module and the one table entry; returns the files that differ from the project."""
    layouts = target / "exporter/sources/redis/layouts"
    (layouts / "throwaway.py").write_text(MODULE)
    table = layouts / "__init__.py"
    text = table.read_text()
    entry = '    "beequeue": "exporter.sources.redis.layouts.beequeue:BeeQueueLayout",\n'
    assert entry in text
    text = text.replace(entry, entry + '    "throwaway": "exporter.sources.redis.layouts.throwaway:ThrowawayLayout",\n')
    table.write_text(text)
    changed = set()
    for path in (target / "exporter").rglob("*.py"):
        original = ROOT / path.relative_to(target)
        if not original.exists() or original.read_text() != path.read_text():
            changed.add(str(path.relative_to(target)))
    return changed


def test_a_throwaway_layout_needs_only_the_places_the_recipe_names(tmp_path: Path, prefix: str,
                                                                   redis_client: redis.Redis) -> None:
    _copy(tmp_path)
    assert _follow_the_recipe(tmp_path) == {"exporter/sources/redis/layouts/throwaway.py",
                                            "exporter/sources/redis/layouts/__init__.py"}
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    guards = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=append",
         "tests/unit/test_registries.py", "tests/unit/test_layers.py", "tests/unit/sources/redis/test_config.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert guards.returncode == 0, guards.stdout[-3000:] + guards.stderr[-2000:]

    redis_client.rpush(f"{prefix}default", json.dumps({"at": 1_699_999_940}), json.dumps({"at": 1_699_999_950}))
    redis_client.zadd(f"{prefix}default:later", {"a": 1, "b": 2, "c": 3})
    config = (f"sources:\n  - name: r\n    type: redis\n    url: {REDIS_URL}\n    queues:\n"
              f"      - {{layout: throwaway, prefix: '{prefix}'}}\n")
    read = subprocess.run([sys.executable, "-c", COLLECT, config], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert read.returncode == 0, read.stderr[-3000:]
    assert json.loads(read.stdout) == [["default", 2, 1_699_999_940.0, [["later", 3]]], 0]
