"""The PostgreSQL source: job tables, the job libraries' schemas, SQL checks and migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exporter.sources.postgres.source import PostgresSource

__all__ = ["PostgresSource"]


def __getattr__(name: str) -> type[PostgresSource]:
    """`PostgresSource` on first use: importing the package (its config) must not import the backend client."""
    if name == "PostgresSource":
        from exporter.sources.postgres.source import PostgresSource

        return PostgresSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
