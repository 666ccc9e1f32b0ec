"""The PostgreSQL source: job tables, the job libraries' schemas, SQL checks and migrations."""

from exporter.sources.postgres.source import PostgresSource

__all__ = ["PostgresSource"]
