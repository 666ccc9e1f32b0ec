"""The Redis source: one connection, queues read in batches, one module per queue library."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exporter.sources.redis.source import RedisSource

__all__ = ["RedisSource"]


def __getattr__(name: str) -> type[RedisSource]:
    """`RedisSource` on first use: importing the package (its config) must not import the backend client."""
    if name == "RedisSource":
        from exporter.sources.redis.source import RedisSource

        return RedisSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
