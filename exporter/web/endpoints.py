"""The exporter's own endpoints in user words; each health API declares its own (`ShimDef.endpoints`).

The landing page lists them; a test keeps them, with the shims', equal to the OpenAPI paths.
"""

from __future__ import annotations

# Always served by the exporter itself.
OWN = (
    ("/metrics", "Metrics for Prometheus: queue depth, oldest job age, failures and source status."),
    ("/healthz", "Liveness: answers while the exporter runs."),
    ("/readyz", "Readiness: answers once every source has been collected once."),
    ("/openapi.json", "Description of every endpoint, for API tools (OpenAPI 3.1)."),
)
