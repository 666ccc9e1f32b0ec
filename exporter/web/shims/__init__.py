"""The JSON shims of `shared/seeds/`, in one table like `SOURCE_TYPES`.

Each module is one seed: pure functions from a `View` (snapshot, the bound system's health, config,
clock) and request parameters to (status, body), thin aiohttp handlers, and a `SHIM` declaring its key,
config model, routes, OpenAPI fragment and auth. This table drives the `shims:` config section
(`ShimsConfig`), the app's routes and /openapi.json: a new shim is one module plus one line here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import create_model

from exporter.health.config import ShimsBase
from exporter.web.shims import ops, platform, service, status, tenant
from exporter.web.shims.base import ShimDef

SHIMS: tuple[ShimDef, ...] = (tenant.SHIM, status.SHIM, service.SHIM, platform.SHIM, ops.SHIM)

if TYPE_CHECKING:
    ShimsConfig = ShimsBase  # the checker sees the typed accessors (`bound`, `get`); the fields are the table's
else:
    _FIELDS: dict[str, Any] = {shim.key: (shim.config | None, None) for shim in SHIMS}
    ShimsConfig = create_model("ShimsConfig", __base__=ShimsBase, __doc__=ShimsBase.__doc__, **_FIELDS)

__all__ = ["SHIMS", "ShimDef", "ShimsConfig"]
