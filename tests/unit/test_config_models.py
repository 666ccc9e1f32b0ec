"""Every config model's validator builds. Models are built lazily (`defer_build`, and OwnValidators
builds a union member only when a config uses it), so a model broken at schema build (a bad
annotation, a tag that is no Literal) would pass every test whose config does not use it: here each
one is built by force, in a fresh interpreter where no earlier test has built any."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, TypeAdapter

from exporter.sources.base import Model, OwnValidators

ROOT = Path(__file__).resolve().parents[2]

BUILD_ALL = """
import importlib, pkgutil, sys
import exporter
from pydantic import BaseModel
for info in pkgutil.walk_packages(exporter.__path__, "exporter."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
def every(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from every(sub)
models = sorted({m for m in every(BaseModel) if m.__module__.startswith("exporter.")}, key=lambda m: m.__qualname__)
for model in models:
    model.model_rebuild(force=True)
    assert model.__pydantic_complete__, model
    assert type(model.__pydantic_validator__).__name__ == "SchemaValidator", model  # not pydantic's mock
kinds = {m.__module__.split(".")[2] for m in models if m.__module__.startswith("exporter.sources.")}
print(len(models), " ".join(sorted(kinds)))
"""


def test_every_config_model_builds() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", BUILD_ALL], env=env, capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stderr
    count, *types = done.stdout.split()
    assert int(count) > 40
    assert {"redis", "postgres", "nats", "http", "system"} <= set(types)


class _A(Model):
    kind: Literal["a", "aa"]


class _B(Model):
    kind: Literal["b"]


class _C(Model):
    kind: Literal["b", "c"]


class _Untagged(Model):
    kind: str


def test_a_tag_literal_with_several_values_maps_each() -> None:
    adapter: TypeAdapter[BaseModel] = TypeAdapter(Annotated[_A | _B, OwnValidators("kind")])
    assert [type(adapter.validate_python({"kind": k})) for k in ("a", "aa", "b")] == [_A, _A, _B]


@pytest.mark.parametrize(("members", "error"), [
    (_B | _C, "_B and _C both take kind='b'"),
    (_A | _Untagged, "_Untagged.kind must be a Literal of strings"),
])
def test_a_tag_two_members_claim_or_no_literal_fails_loudly(members: object, error: str) -> None:
    with pytest.raises(TypeError, match=error):
        TypeAdapter(Annotated[members, OwnValidators("kind")])
