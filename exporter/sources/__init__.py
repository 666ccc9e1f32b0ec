"""Source types by the name used as `type:` in the config, in one visible table.

A type's config model is imported with the config; its source, with its backend client (asyncpg,
nats-py), only when a source of that type is built: a daemon pays for the clients it uses.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from exporter.sources.base import MetricDef, Source, SourceConfig
from exporter.sources.files import FilesConfig
from exporter.sources.http import HttpConfig
from exporter.sources.nats.config import NatsConfig
from exporter.sources.postgres.config import PostgresConfig
from exporter.sources.redis.config import RedisConfig
from exporter.sources.system import SystemConfig


@dataclass(frozen=True)
class SourceType:
    """One `type:`: its config model, and where its `Source` class lives (`module:Class`)."""

    config_model: type[SourceConfig]
    source: str

    def load(self) -> type[Source]:
        """The source class, importing its module (and backend client) on first use."""
        module, _, name = self.source.partition(":")
        found: type[Source] = getattr(importlib.import_module(module), name)
        return found

    @property
    def metrics(self) -> tuple[MetricDef, ...]:
        """The type's own metrics (for the catalogue and the docs; loads the source class)."""
        return self.load().metrics


SOURCE_TYPES: dict[str, SourceType] = {
    "redis": SourceType(RedisConfig, "exporter.sources.redis.source:RedisSource"),
    "nats": SourceType(NatsConfig, "exporter.sources.nats.source:NatsSource"),
    "postgres": SourceType(PostgresConfig, "exporter.sources.postgres.source:PostgresSource"),
    "system": SourceType(SystemConfig, "exporter.sources.system:SystemSource"),
    "files": SourceType(FilesConfig, "exporter.sources.files:FilesSource"),
    "http": SourceType(HttpConfig, "exporter.sources.http:HttpSource"),
}

