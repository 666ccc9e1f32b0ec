"""Which sources a reload keeps: same config, same shard and same contents behind every `*_file` key."""

from __future__ import annotations

from pathlib import Path

from exporter.cli import build_scheduler
from exporter.config import parse_config
from exporter.reload import files_of, make_sources


def config(tmp: Path, queues: str = "[default]", shard: str = "0/1") -> str:
    return f"""
shard: {shard}
sources:
  - {{name: host, type: system}}
  - name: cache
    type: redis
    url: redis://127.0.0.1:1/0
    password_file: {tmp / "redis-password"}
    queues: [{{layout: laravel, queues: {queues}}}]
"""


def test_unchanged_sources_are_reused_changed_ones_rebuilt(tmp_path: Path) -> None:
    (tmp_path / "redis-password").write_text("first\n")
    scheduler = build_scheduler(parse_config(config(tmp_path), "c.yaml", {}))
    host, cache = scheduler.sources

    same = make_sources(parse_config(config(tmp_path), "c.yaml", {}), lambda: scheduler, scheduler.sources)
    assert same[0] is host and same[1] is cache

    changed = make_sources(parse_config(config(tmp_path, "[default, mail]"), "c.yaml", {}), lambda: scheduler,
                           scheduler.sources)
    assert changed[0] is host and changed[1] is not cache

    # a rotated secret behind the same path is a change too
    (tmp_path / "redis-password").write_text("second\n")
    rotated = make_sources(parse_config(config(tmp_path), "c.yaml", {}), lambda: scheduler, scheduler.sources)
    assert rotated[0] is host and rotated[1] is not cache

    # another shard: every source is rebuilt with the new shard in its context
    resharded = make_sources(parse_config(config(tmp_path, shard="1/2"), "c.yaml", {}), lambda: scheduler,
                             scheduler.sources)
    assert all(new is not old for new, old in zip(resharded, scheduler.sources, strict=True))
    assert resharded[1].context.shard == (1, 2)


def test_files_of_finds_file_keys_at_any_depth(tmp_path: Path) -> None:
    (tmp_path / "redis-password").write_text("x")
    conf = parse_config(config(tmp_path), "c.yaml", {})
    digest = "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"  # sha256 of "x"
    assert files_of(conf.sources[1]) == {"password_file": digest}
    assert files_of(conf) == {"sources.1.password_file": digest}
    (tmp_path / "redis-password").unlink()
    assert files_of(conf.sources[1]) == {"password_file": None}
