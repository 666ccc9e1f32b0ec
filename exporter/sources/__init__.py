"""Source types by the name used as `type:` in the config, in one visible table.

Each entry names its config model and its source class (`module:Class`) instead of importing them: a
type's config model is imported when a config first names the type (`OwnValidators` in
`exporter/config.py`), its source, with its backend client (asyncpg, nats-py), only when a source of
that type is built. A daemon pays for the types it uses (tests/unit/test_registries.py checks every entry).
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.sources.base import MetricDef, Source, SourceConfig, load


@dataclass(frozen=True)
class SourceType:
    """One `type:`: where its config model and its `Source` class live (`module:Class` each)."""

    config: str
    source: str

    @property
    def config_model(self) -> type[SourceConfig]:
        """The config model, importing its module (never a backend client) on first use."""
        found: type[SourceConfig] = load(self.config)
        return found

    def load(self) -> type[Source]:
        """The source class, importing its module (and backend client) on first use."""
        found: type[Source] = load(self.source)
        return found

    @property
    def metrics(self) -> tuple[MetricDef, ...]:
        """The type's own metrics (for the catalogue and the docs; loads the source class)."""
        return self.load().metrics


SOURCE_TYPES: dict[str, SourceType] = {
    "redis": SourceType("exporter.sources.redis.config:RedisConfig", "exporter.sources.redis.source:RedisSource"),
    "nats": SourceType("exporter.sources.nats.config:NatsConfig", "exporter.sources.nats.source:NatsSource"),
    "postgres": SourceType("exporter.sources.postgres.config:PostgresConfig",
                           "exporter.sources.postgres.source:PostgresSource"),
    "system": SourceType("exporter.sources.system:SystemConfig", "exporter.sources.system:SystemSource"),
    "files": SourceType("exporter.sources.files:FilesConfig", "exporter.sources.files:FilesSource"),
    "http": SourceType("exporter.sources.http:HttpConfig", "exporter.sources.http:HttpSource"),
}
