"""Writes the README's benchmark tables from bench/results/*.json, so a figure cannot drift from its run.

Each benchmark writes `bench/results/<bench>.json`:
    {"bench": "<bench>", "command": "<how to re-run>", "measured": "<date>", "conditions": "<machine, load>",
     "tables": {"<table-id>": {"columns": ["..."], "rows": [["...", "..."]]}}}   (cells are strings)
and the README holds each table between `<!-- bench:<bench>/<table-id> -->` and `<!-- /bench -->`.
`python3 -m bench.readme` rewrites those sections; tests/unit/test_bench_readme.py fails when one is stale.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"

SECTION = re.compile(
    r"^(?P<indent>[ \t]*)<!-- bench:(?P<bench>[\w.-]+)/(?P<table>[\w.-]+) -->\n"
    r"(?P<body>.*?)"
    r"^(?P=indent)<!-- /bench -->$",
    re.M | re.S,
)
BAR = "\\|"  # a pipe inside a cell, escaped for Markdown
KEYS = {"bench", "command", "measured", "conditions", "tables"}


class ResultsError(ValueError):
    """A results file that is not in the shared shape, or a marker naming a table no file holds."""


def load_results(directory: Path = RESULTS) -> dict[str, dict[str, Any]]:
    """Every results file by bench name, each checked against the shared shape."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        data = json.loads(path.read_text())
        check_shape(path, data)
        found[data["bench"]] = data
    return found


def check_shape(path: Path, data: Any) -> None:
    """Refuses a file a benchmark wrote in another shape, naming the file and what is wrong."""
    if not isinstance(data, dict) or not set(data) >= KEYS:  # more (a bench's raw details) may follow
        raise ResultsError(f"{path}: keys must include {sorted(KEYS)}")
    if data["bench"] != path.stem:
        raise ResultsError(f"{path}: bench {data['bench']!r} is not the file name {path.stem!r}")
    for key in KEYS - {"tables"}:
        if not isinstance(data[key], str):
            raise ResultsError(f"{path}: {key} must be a string")
    for table_id, table in data["tables"].items():
        columns, rows = table.get("columns"), table.get("rows")
        if set(table) != {"columns", "rows"} or not isinstance(columns, list) or not isinstance(rows, list):
            raise ResultsError(f"{path}: tables.{table_id} must hold exactly columns and rows")
        for n, row in enumerate([columns, *rows]):
            if len(row) != len(columns) or not all(isinstance(cell, str) for cell in row):
                raise ResultsError(f"{path}: tables.{table_id} row {n}: {len(columns)} string cells expected")


def markdown_table(columns: list[str], rows: list[list[str]], indent: str = "") -> str:
    """A Markdown table, one line per row, each line indented like its marker."""

    def cell(text: str) -> str:
        return f" {text.replace('|', BAR)} |" if text else " |"

    def line(cells: list[str]) -> str:
        return indent + "|" + "".join(map(cell, cells))

    return "\n".join([line(columns), line(["---"] * len(columns)), *map(line, rows)])


def render(text: str, results: dict[str, dict[str, Any]]) -> str:
    """The README text with every benchmark section rewritten from its results."""

    def section(match: re.Match[str]) -> str:
        indent, bench, table_id = match["indent"], match["bench"], match["table"]
        try:
            table = results[bench]["tables"][table_id]
        except KeyError:
            raise ResultsError(f"README marker bench:{bench}/{table_id}: no such table in bench/results") from None
        body = markdown_table(table["columns"], table["rows"], indent)
        return f"{indent}<!-- bench:{bench}/{table_id} -->\n{body}\n{indent}<!-- /bench -->"

    return SECTION.sub(section, text)


def markers(text: str) -> list[tuple[str, str]]:
    """(bench, table-id) of every section the README shows."""
    return [(m["bench"], m["table"]) for m in SECTION.finditer(text)]


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else README
    try:
        path.write_text(render(path.read_text(), load_results()))
    except ResultsError as error:
        print(f"bench.readme: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
