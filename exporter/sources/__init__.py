"""Source types by the name used as `type:` in the config, in one visible table."""

from __future__ import annotations

from exporter.sources.base import Source
from exporter.sources.files import FilesSource
from exporter.sources.http import HttpSource
from exporter.sources.nats import NatsSource
from exporter.sources.postgres import PostgresSource
from exporter.sources.redis import RedisSource
from exporter.sources.system import SystemSource

SOURCE_TYPES: dict[str, type[Source]] = {
    "redis": RedisSource,
    "nats": NatsSource,
    "postgres": PostgresSource,
    "system": SystemSource,
    "files": FilesSource,
    "http": HttpSource,
}
