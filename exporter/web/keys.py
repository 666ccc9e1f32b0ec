"""Typed application keys, so handlers reach shared state without string lookups."""

from __future__ import annotations

from aiohttp import web

from exporter.config import ExporterConfig
from exporter.scheduler import Scheduler
from exporter.web.limits import Limits

SCHEDULER = web.AppKey("scheduler", Scheduler)
CONFIG = web.AppKey("config", ExporterConfig)
STARTED_AT = web.AppKey("started_at", float)
LIMITS = web.AppKey("limits", Limits)
