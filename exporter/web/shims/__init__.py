"""The JSON shims of `shared/seeds/`, in one table like `SOURCE_TYPES`.

Each module is one seed: pure functions from a `View` (snapshot, the bound system's health, config,
clock) and request parameters to (status, body), thin aiohttp handlers, and a `SHIM` declaring its key,
config model, routes, OpenAPI fragment and auth. This table drives the `shims:` config section
(`ShimsConfig`), the app's routes and /openapi.json: a new shim is one module plus one line here.

A line names the module and the GET paths it serves, so the app mounts every path (a disabled shim
answers 404, and a reload can switch one on) and the web auth knows them without importing the module:
a shim's module (its config model, handlers, OpenAPI fragment and what they import) is imported when a
config names the shim or a request reaches one of its paths (tests/unit/test_registries.py keeps the
paths equal to the module's routes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from aiohttp import web
from pydantic import create_model

from exporter.health.config import Shim, ShimsBase
from exporter.sources.base import OwnValidators, load

if TYPE_CHECKING:
    from exporter.web.shims.base import ShimDef

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ShimRef:
    """One shim of the table: its key (the `shims.<key>` section), its module, the GET paths it serves."""

    key: str
    module: str
    paths: tuple[str, ...]

    def load(self) -> ShimDef:
        """The module's `SHIM`, importing the module on first use."""
        found: ShimDef = load(f"{self.module}:SHIM")
        return found

    def handler(self, path: str) -> Handler:
        """The module's GET handler of `path`."""
        for route in self.load().routes:
            if isinstance(route, web.RouteDef) and route.method == "GET" and route.path == path:
                found: Handler = route.handler
                return found
        raise LookupError(f"shim {self.key!r} serves no GET {path}")


SHIMS: tuple[ShimRef, ...] = (
    ShimRef("tenant", "exporter.web.shims.tenant",
            ("/api/v1/health", "/api/v1/landlord/health", "/api/v1/landlord/tenants")),
    ShimRef("status", "exporter.web.shims.status", ("/api/health/status",)),
    ShimRef("service", "exporter.web.shims.service", ("/health", "/health/detailed", "/health/consistency")),
    ShimRef("platform", "exporter.web.shims.platform",
            ("/api/v1/platform/system/queues", "/api/v1/platform/system/queues/{queue_name}/jobs",
             "/api/v1/platform/system/infrastructure/health", "/api/v1/platform/system/infrastructure/alerts")),
    ShimRef("ops", "exporter.web.shims.ops", ("/api/ops/plannings",)),
)

if TYPE_CHECKING:
    ShimsConfig = ShimsBase  # the checker sees the typed accessors (`bound`, `get`); the fields are the table's
else:  # each section validated by its shim's own model, imported when the config gives the section
    _FIELDS: dict[str, Any] = {
        shim.key: (Annotated[Shim, OwnValidators(model=f"{shim.module}:SHIM.config")] | None, None)
        for shim in SHIMS}
    ShimsConfig = create_model("ShimsConfig", __base__=ShimsBase, __doc__=ShimsBase.__doc__, **_FIELDS)

__all__ = ["SHIMS", "ShimRef", "ShimsConfig"]
