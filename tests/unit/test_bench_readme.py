"""The README's benchmark tables are generated from bench/results/*.json, so a figure cannot drift from its run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.readme import README, RESULTS, ResultsError, check_shape, load_results, markers, render


def test_readme_benchmark_tables_match_the_results_files() -> None:
    text = README.read_text()
    assert render(text, load_results()) == text, "run `python3 -m bench.readme` to regenerate the tables"


def test_every_results_table_is_shown_and_every_shown_table_has_results() -> None:
    shown = markers(README.read_text())
    held = [(bench, table) for bench, data in load_results().items() for table in data["tables"]]
    assert len(shown) == len(set(shown))
    assert sorted(shown) == sorted(held)
    assert ("redis", "tenants") in shown


def test_a_changed_figure_changes_the_readme_and_only_its_cell() -> None:
    results = load_results()
    rows = results["redis"]["tables"]["tenants"]["rows"]
    peak = next(row for row in rows if row[0] == "daemon peak RSS")
    before = README.read_text()
    old = "| daemon peak RSS | " + " | ".join(peak[1:]) + " |"
    was = f"| daemon peak RSS | {peak[1]} | {peak[2]} |"
    peak[2] = "1 MB"
    after = render(before, results)
    assert old in before and old not in after
    assert after.replace(f"| daemon peak RSS | {peak[1]} | 1 MB |", "") == before.replace(was, "")


def test_a_marker_without_results_is_refused() -> None:
    text = "a\n<!-- bench:nosuch/table -->\n| old |\n<!-- /bench -->\n"
    with pytest.raises(ResultsError, match="bench:nosuch/table"):
        render(text, load_results())


def test_a_file_in_another_shape_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "redis.json"
    data = json.loads((RESULTS / "redis.json").read_text())
    data["tables"]["tenants"]["rows"][0].append("extra")
    with pytest.raises(ResultsError, match=r"redis.json: tables.tenants row 1"):
        check_shape(path, data)
    with pytest.raises(ResultsError, match="keys must include"):
        check_shape(path, {"1000": {"pipeline_cycle_ms": 3.1}})  # bench_redis.py's old raw shape
