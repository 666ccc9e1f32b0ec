"""The Redis source: one connection, queues read in batches, one module per queue library."""

from exporter.sources.redis.source import RedisSource

__all__ = ["RedisSource"]
