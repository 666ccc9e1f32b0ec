"""The NATS JetStream source: streams, consumers, KV buckets, object stores and job registries."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exporter.sources.nats.source import NatsSource

__all__ = ["NatsSource"]


def __getattr__(name: str) -> type[NatsSource]:
    """`NatsSource` on first use: importing the package (its config) must not import the backend client."""
    if name == "NatsSource":
        from exporter.sources.nats.source import NatsSource

        return NatsSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
