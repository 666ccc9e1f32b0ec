"""What rules and shims read of a source is a typed fact: no code reads `Reading.details` by a literal key.
Only operator-written `Ref` paths of the config reach into details, through `exporter/values.py`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from exporter.facts import PoolUse, Tenants
from exporter.model import Reading

PACKAGE = Path(__file__).resolve().parents[2] / "exporter"


def literal_detail_reads(tree: ast.AST) -> list[int]:
    """Lines of `x.details[...]` / `x.details.get(...)` with a literal key, and `dig`/`read` with a literal path."""
    def literal_index(node: ast.AST) -> bool:
        return (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "details" and isinstance(node.slice, ast.Constant)
                and isinstance(node.ctx, ast.Load))

    def literal_get(node: ast.AST) -> bool:
        return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "details")

    def literal_path(node: ast.AST) -> bool:
        return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("dig", "read")
                and bool(node.args) and isinstance(node.args[-1], ast.Constant)
                and isinstance(node.args[-1].value, str))

    lines = [node.lineno for node in ast.walk(tree)  # type: ignore[attr-defined]  # every matched node is an expr
             if literal_index(node) or literal_get(node) or literal_path(node)]
    return lines


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_literal_key_into_details(path: Path) -> None:
    assert literal_detail_reads(ast.parse(path.read_text())) == []


def test_the_check_sees_a_literal_read() -> None:
    assert literal_detail_reads(ast.parse('r.details["pool"]\nr.details.get("x")\ndig(d, "a.b")')) == [1, 2, 3]


def test_facts_by_type() -> None:
    reading = Reading(facts=(Tenants(("a",)), PoolUse(5, 20), Tenants(("b",))))
    assert reading.fact(PoolUse) == PoolUse(5, 20) and reading.fact(PoolUse).percent == 25.0  # type: ignore[union-attr]  # just asserted present
    assert [t.ids for t in reading.facts_of(Tenants)] == [("a",), ("b",)]
    assert Reading().fact(PoolUse) is None and PoolUse(0, 0).percent is None
