"""The endpoints in user words: the exporter's own, and those of each health API by its `shims:` key.

The landing page lists them; the web auth leaves the health APIs to their own documented
authentication and guards everything else. A test keeps this table equal to the OpenAPI paths.
"""

from __future__ import annotations

# Always served by the exporter itself.
OWN = (
    ("/metrics", "Metrics for Prometheus: queue depth, oldest job age, failures and source status."),
    ("/healthz", "Liveness: answers while the exporter runs."),
    ("/readyz", "Readiness: answers once every source has been collected once."),
    ("/openapi.json", "Description of every endpoint, for API tools (OpenAPI 3.1)."),
)
# The health APIs, per `shims:` key: shown only when that key is configured and enabled.
SHIMS: dict[str, tuple[tuple[str, str], ...]] = {
    "tenant": (
        ("/api/v1/health", "Health of one tenant's queues (bearer token)."),
        ("/api/v1/landlord/health", "Every queue of every tenant, for administrators."),
        ("/api/v1/landlord/tenants", "The tenants a monitor should poll, for administrators."),
    ),
    "status": (("/api/health/status", "Health of each component, with host CPU and memory (API key)."),),
    "service": (
        ("/health", "Short health answer for load balancers (no credentials needed)."),
        ("/health/detailed", "Full health of the service and its dependencies (API key or token)."),
        ("/health/consistency", "Results of the data consistency checks (API key or token)."),
    ),
    "platform": (
        ("/api/v1/platform/system/queues", "Background job queues with their counts (token)."),
        ("/api/v1/platform/system/queues/{queue_name}/jobs", "The jobs of one queue, page by page (token)."),
        ("/api/v1/platform/system/infrastructure/health", "Health of the infrastructure services (token)."),
        ("/api/v1/platform/system/infrastructure/alerts", "Recent infrastructure alerts (token)."),
    ),
    "ops": (("/api/ops/plannings", "Health of the planning refresh jobs (ops token)."),),
}

