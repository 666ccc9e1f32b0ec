"""jobqueue-exporter: job-queue health as Prometheus gauges and documented JSON health endpoints."""

__version__ = "0.1.0"
