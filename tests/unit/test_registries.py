"""The three tables that make a new part one module plus one line: every module is in its table, and
the table alone drives the config, the routes and the OpenAPI document. The source and layout tables
name their members as `module:Class` (imported when a config uses them): every entry imports and names
the class whose tag it is."""

from __future__ import annotations

import importlib
import inspect
import typing
from pathlib import Path
from typing import Annotated

import pytest
from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from exporter.config import ConfigError, parse_config
from exporter.sources import SOURCE_TYPES
from exporter.sources.base import OwnValidators, Source, SourceConfig, load
from exporter.sources.redis.layouts import LAYOUTS
from exporter.sources.redis.layouts.base import Layout
from exporter.web.openapi import SECURITY_SCHEMES, document
from exporter.web.shims import SHIMS, ShimsConfig

PACKAGE = Path(__file__).resolve().parents[2] / "exporter"


def _modules(folder: str) -> list[str]:
    return sorted(p.stem for p in (PACKAGE / folder).glob("*.py") if p.stem not in ("__init__", "base"))


def test_every_shim_module_is_in_the_table() -> None:
    assert sorted(s.key for s in SHIMS) == _modules("web/shims")
    for entry in SHIMS:
        module = importlib.import_module(f"exporter.web.shims.{entry.key}")
        assert entry.module == module.__name__ and module.SHIM is entry.load() and module.SHIM.key == entry.key


def test_the_table_names_each_shims_paths_and_their_handlers() -> None:
    """The app mounts the table's paths without importing the module: they are exactly its GET routes."""
    for entry in SHIMS:
        routes = [r for r in entry.load().routes if isinstance(r, web.RouteDef)]
        assert all(r.method == "GET" for r in routes), entry.key
        assert entry.paths == tuple(r.path for r in routes), entry.key
        assert [entry.handler(path) for path in entry.paths] == [r.handler for r in routes]
    with pytest.raises(LookupError, match="shim 'ops' serves no GET /nowhere"):
        SHIMS[-1].handler("/nowhere")


def test_the_table_drives_the_config() -> None:
    assert list(ShimsConfig.model_fields) == [s.key for s in SHIMS]
    for entry in SHIMS:
        field = ShimsConfig.model_fields[entry.key]
        assert field.default is None
        with pytest.raises(ValidationError) as info:  # validated by the shim's own model
            ShimsConfig.model_validate({entry.key: {"system": "s", "bogus": 1}})
        assert {(e["loc"], e["type"]) for e in info.value.errors()} >= {((entry.key, "bogus"), "extra_forbidden")}
        assert set(entry.load().config.model_fields) >= {"system", "enabled"}
    shim = ShimsConfig.model_validate({"ops": {"system": "s"}}).get("ops")
    assert type(shim) is SHIMS[-1].load().config and shim.system == "s"


def test_each_shim_documents_exactly_its_routes_with_its_auth() -> None:
    paths = document()["paths"]
    for shim in (entry.load() for entry in SHIMS):
        routed = {r.path for r in shim.routes if isinstance(r, web.RouteDef)}
        assert routed == set(shim.paths), shim.key
        assert all(paths[p] == shim.paths[p] for p in routed)
        for path in routed:
            schemes = {name for rule in paths[path]["get"]["security"] for name in rule}
            assert schemes <= set(shim.auth) <= set(SECURITY_SCHEMES), (shim.key, path)


def _own_classes(module_name: str, base: type) -> list[type]:
    module = importlib.import_module(module_name)
    return [c for _, c in inspect.getmembers(module, inspect.isclass)
            if issubclass(c, base) and c is not base and c.__module__.startswith(module_name)]


def test_every_layout_is_in_the_layout_table() -> None:
    for tag, ref in LAYOUTS.items():  # each entry imports and names the layout whose tag it is
        layout = load(ref)
        assert issubclass(layout, Layout) and layout.__module__ == ref.partition(":")[0], ref
        assert layout.model_fields["layout"].annotation == typing.Literal[tag], ref
    tabled = {load(ref) for ref in LAYOUTS.values()}
    for name in _modules("sources/redis/layouts"):
        assert all(c in tabled for c in _own_classes(f"exporter.sources.redis.layouts.{name}", Layout)), name


def test_two_tables_under_one_tag_stay_apart() -> None:
    """Each `Annotated[...]` validates with its own table: nothing (typing's cache of `Annotated`, a cache
    of validators keyed by the tag alone) may hand one table's validator to another."""
    only_list = TypeAdapter(Annotated[Layout, OwnValidators("layout", {"list": LAYOUTS["list"]})])
    only_zset = TypeAdapter(Annotated[Layout, OwnValidators("layout", {"zset": LAYOUTS["zset"]})])
    assert type(only_zset.validate_python({"layout": "zset", "name": "q", "key": "k"})).__name__ == "SortedSetLayout"
    with pytest.raises(ValidationError, match="expected tags: 'list'"):
        only_list.validate_python({"layout": "zset", "name": "q", "key": "k"})


def test_a_tag_outside_a_table_is_a_config_error_naming_file_line_and_key() -> None:
    """Only the table's tags validate; the error lists them in table order, located like any other."""
    with pytest.raises(ConfigError) as info:
        parse_config("sources:\n  - name: k\n    type: kafka\n", "c.yaml", {})
    assert info.value.lines() == [
        "c.yaml:2: sources[0]: Input tag 'kafka' found using 'type' does not match any of the expected tags: "
        + ", ".join(f"'{t}'" for t in SOURCE_TYPES)]
    with pytest.raises(ConfigError) as info:
        parse_config("sources:\n  - name: r\n    type: redis\n    queues:\n      - layout: 7\n", "c.yaml", {})
    assert info.value.lines()[0].startswith("c.yaml:5: sources[0].queues[0]: Input tag '7' found using 'layout'")


def test_every_source_is_in_the_source_table() -> None:
    for name, kind in SOURCE_TYPES.items():
        source = kind.load()
        assert issubclass(source, Source) and source.config_model is kind.config_model
        assert issubclass(kind.config_model, SourceConfig)
        assert kind.config_model.model_fields["type"].annotation == typing.Literal[name]
        assert kind.config_model.__module__ == kind.config.partition(":")[0]
        assert source.__module__ == kind.source.partition(":")[0]
    packages = sorted(p.parent.name for p in (PACKAGE / "sources").glob("*/__init__.py"))
    found = {c for name in [*packages, *_modules("sources")]
             for c in _own_classes(f"exporter.sources.{name}", Source)}
    found |= {c for name in packages for c in _own_classes(f"exporter.sources.{name}.source", Source)}
    assert found == {kind.load() for kind in SOURCE_TYPES.values()}
