"""The NATS JetStream source: streams, consumers, KV buckets, object stores and job registries."""

from exporter.sources.nats.source import NatsSource

__all__ = ["NatsSource"]
