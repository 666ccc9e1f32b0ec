"""The op table drives both paths: the Lua script's table is generated from it, and the script ships as
package data."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from exporter.sources.redis.script import ARITY, LUA, OPS, OpSpec, command, flatten

ROOT = Path(__file__).resolve().parents[4]


def test_lua_table_is_generated_from_the_op_table() -> None:
    assert "--@OPS@--" not in LUA
    assert "LLEN = {0, 'LLEN', '$k'}" in LUA
    assert "ZMEMBERS = {1, 'ZRANGE', '$k', '0', '$1-1', 'WITHSCORES'}" in LUA
    assert "HEAD = {4}" in LUA
    assert ARITY["HEADHASH"] == 7 and set(ARITY) == set(OPS)


def test_plain_command_expansion() -> None:
    assert command(OPS["ZCOUNT"], "k", ("1", "+inf")) == ["ZCOUNT", "k", "1", "+inf"]
    assert command(OPS["ZMEMBERS"], "k", ("100",)) == ["ZRANGE", "k", "0", "99", "WITHSCORES"]
    assert command(OpSpec(0, ("TYPE", "$k")), "k", ()) == ["TYPE", "k"]


def test_flatten_checks_arity() -> None:
    assert flatten([("HGET", "h", "f")]) == ["HGET", "h", "f"]
    with pytest.raises(ValueError, match="takes 2 arguments"):
        flatten([("HGET", "h")])


def test_script_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "*.lua" in config["tool"]["setuptools"]["package-data"]["exporter.sources.redis"]
    assert (ROOT / "exporter/sources/redis/script.lua").is_file()
