"""Typed application keys, so handlers reach shared state without string lookups.

The web layer sees the config through `AppConfig`, a protocol of the few parts it reads: `exporter/config.py`
is the composition root above web (it builds `ShimsConfig` from the web's shim table), so web never imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from aiohttp import web

from exporter.health.config import AuthConfig, ShimsBase, SystemConfig
from exporter.scheduler import Scheduler
from exporter.sources.base import SourceConfig
from exporter.web.limits import Limits


class AppConfig(Protocol):
    """What the web layer reads of the whole config (`exporter.config.ExporterConfig` satisfies it)."""

    @property
    def revision(self) -> str: ...

    @property
    def systems(self) -> Sequence[SystemConfig]: ...

    @property
    def shims(self) -> ShimsBase: ...

    @property
    def auth(self) -> AuthConfig: ...

    def source(self, name: str) -> SourceConfig | None: ...

    def system(self, name: str) -> SystemConfig | None: ...


SCHEDULER = web.AppKey("scheduler", Scheduler)
CONFIG = web.AppKey("config", AppConfig)
STARTED_AT = web.AppKey("started_at", float)
LIMITS = web.AppKey("limits", Limits)
