"""The op table of the Redis source, its read-only Lua script (script.lua, shipped as package data) and
how op lists are batched into the script's arguments.

It runs the ops of `ops.py` inside Redis through `EVAL_RO`/`EVALSHA_RO` when `scripts: auto|lua`;
the JSON shortcut and validity checks here have Python twins in `ops.py`, and tests hold the two
paths to the same results.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.resources import files

WRONGTYPE = "!WRONGTYPE"
SEP = "\x1f"  # joins tenant ids inside one EACH op
Op = tuple[str, ...]


@dataclass(frozen=True)
class OpSpec:
    """One op: how many arguments follow its key and, for a plain op, the one Redis command it runs
    (`$k` the key, `$1`.. the op's arguments, `$1-1` one less), whose reply is the op's result.

    A plain op is this one line: the Lua script and the pipeline path both run it from here. An op
    without a command is special: coded in script.lua (`one`) and in ops.py (`_pack_one`, `_settle`).
    """

    arity: int
    command: tuple[str, ...] = ()


OPS: dict[str, OpSpec] = {
    **{name: OpSpec(0, (name, "$k")) for name in ("LLEN", "ZCARD", "SCARD", "HLEN", "XLEN", "EXISTS", "GET",
                                                  "HGETALL")},
    "HGET": OpSpec(1, ("HGET", "$k", "$1")),
    "ZCOUNT": OpSpec(2, ("ZCOUNT", "$k", "$1", "$2")),
    "ZFIRST": OpSpec(0, ("ZRANGE", "$k", "0", "0", "WITHSCORES")),
    "ZMEMBERS": OpSpec(1, ("ZRANGE", "$k", "0", "$1-1", "WITHSCORES")),
    "ZRECENT": OpSpec(1, ("ZREVRANGE", "$k", "0", "$1-1", "WITHSCORES")),
    "LFIRST": OpSpec(1, ("LRANGE", "$k", "0", "$1-1")),
    "SMEMBERS": OpSpec(1, ("SMEMBERS", "$k")),  # sorted and capped in Python (ops._normalise), the same for both paths
    "HEAD": OpSpec(4),
    "HEADHASH": OpSpec(5),
    "HEADGET": OpSpec(5),
    "HEADHGET": OpSpec(5),
    "XFIRST": OpSpec(0),
    "XGROUPS": OpSpec(0),
    "XNEXT": OpSpec(1),
    "XUNDELIVERED": OpSpec(0),
    "ZHASHES": OpSpec(2),
    "ZGETS": OpSpec(2),
    "ZEXISTS": OpSpec(3),
}
# CLIENTNAMES (CLIENT LIST) is not an op of the script: Redis refuses CLIENT inside scripts, so
# ops.OpRunner.run sends it as one plain command on either path.
ARITY = {name: spec.arity + 2 for name, spec in OPS.items()}  # fields of an op tuple: name, key, arguments


def command(spec: OpSpec, key: str, args: Sequence[str]) -> list[str]:
    """The Redis command of a plain op (the Python twin of the script's `plain`)."""
    out = []
    for part in spec.command:
        if part == "$k":
            part = key
        elif part.startswith("$"):
            value = args[int(part[1]) - 1]
            part = str(int(value) - 1) if part.endswith("-1") else value
        out.append(part)
    return out


def _lua_table() -> str:
    def quote(text: str) -> str:
        return "'" + text + "'"

    return ", ".join(f"{name} = {{{', '.join([str(spec.arity), *map(quote, spec.command)])}}}"
                     for name, spec in OPS.items())


LUA = (files(__package__) / "script.lua").read_text().replace("--@OPS@--", _lua_table())


def batches(ops: Sequence[Op], size: int) -> Iterator[list[Op]]:
    """Batches of about `size` keys; an EACH op weighs as many keys as it has tenants."""
    batch: list[Op] = []
    weight = 0
    for op in ops:
        w = op[4].count(SEP) + 1 if op[0] == "EACH" else 1
        if batch and weight + w > size:
            yield batch
            batch, weight = [], 0
        batch.append(op)
        weight += w
    if batch:
        yield batch


def flatten(ops: Sequence[Op]) -> list[str]:
    flat: list[str] = []
    for op in ops:
        if op[0] == "EACH":
            if len(op) != ARITY[op[1]] + 3:
                raise ValueError(f"EACH {op[1]} takes {ARITY[op[1]] + 3} fields, got {op!r}")
        elif len(op) != ARITY[op[0]]:
            raise ValueError(f"op {op[0]} takes {ARITY[op[0]] - 1} arguments, got {op[1:]!r}")
        flat.extend(op)
    return flat


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()
