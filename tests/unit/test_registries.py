"""The three tables that make a new part one module plus one line: every module is in its table, and
the table alone drives the config, the routes and the OpenAPI document."""

from __future__ import annotations

import importlib
import inspect
import typing
from pathlib import Path

from aiohttp import web

from exporter.sources import SOURCE_TYPES
from exporter.sources.base import Source
from exporter.sources.redis.layouts import AnyLayout
from exporter.sources.redis.layouts.base import Layout
from exporter.web.openapi import SECURITY_SCHEMES, document
from exporter.web.shims import SHIMS, ShimsConfig

PACKAGE = Path(__file__).resolve().parents[2] / "exporter"


def _modules(folder: str) -> list[str]:
    return sorted(p.stem for p in (PACKAGE / folder).glob("*.py") if p.stem not in ("__init__", "base"))


def test_every_shim_module_is_in_the_table() -> None:
    assert sorted(s.key for s in SHIMS) == _modules("web/shims")
    for shim in SHIMS:
        module = importlib.import_module(f"exporter.web.shims.{shim.key}")
        assert module.SHIM is shim


def test_the_table_drives_the_config() -> None:
    assert list(ShimsConfig.model_fields) == [s.key for s in SHIMS]
    for shim in SHIMS:
        field = ShimsConfig.model_fields[shim.key]
        assert typing.get_args(field.annotation) == (shim.config, type(None)) and field.default is None


def test_each_shim_documents_exactly_its_routes_with_its_auth() -> None:
    paths = document()["paths"]
    for shim in SHIMS:
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
    tabled = typing.get_args(typing.get_args(AnyLayout)[0])
    for name in _modules("sources/redis/layouts"):
        assert all(c in tabled for c in _own_classes(f"exporter.sources.redis.layouts.{name}", Layout)), name


def test_every_source_is_in_the_source_table() -> None:
    for name, kind in SOURCE_TYPES.items():
        source = kind.load()
        assert issubclass(source, Source) and source.config_model is kind.config_model
        assert kind.config_model.model_fields["type"].annotation == typing.Literal[name]
    packages = sorted(p.parent.name for p in (PACKAGE / "sources").glob("*/__init__.py"))
    found = {c for name in [*packages, *_modules("sources")]
             for c in _own_classes(f"exporter.sources.{name}", Source)}
    found |= {c for name in packages for c in _own_classes(f"exporter.sources.{name}.source", Source)}
    assert found == {kind.load() for kind in SOURCE_TYPES.values()}
