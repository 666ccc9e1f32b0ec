# syntax=docker/dockerfile:1
# Base image pinned by digest (python:3.11-slim-bookworm, linux/amd64 + arm64 index). To move to a
# newer patch release: `docker buildx imagetools inspect python:3.11-slim-bookworm`, then replace
# the digest in both build stages.

# Build stage: the project's own wheel, built by the locked build backend (requirements-build.txt);
# its dependencies come from the lock in the runtime stage, not from this build.
FROM python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b AS build
WORKDIR /src
COPY requirements-build.txt pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip install --no-cache-dir --require-hashes --no-deps --requirement requirements-build.txt \
 && pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

# Runtime stage: only the wheels, a non-root user, no compiler.
FROM python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b
ARG VERSION=0.1.0
# The build's own facts (seed 002's build_git_hash / build_timestamp, the OCI labels): pass them, e.g.
#   --build-arg REVISION=$(git rev-parse HEAD) --build-arg BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# Left out, /health reports null for them, never a made-up value.
ARG REVISION=unknown
ARG BUILD_DATE=
LABEL org.opencontainers.image.title="jobqueue-exporter" \
      org.opencontainers.image.description="Prometheus exporter and health endpoints for job queues on Redis, PostgreSQL and NATS JetStream" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm" \
      org.opencontainers.image.base.digest="sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b"
# The default config reads every address from the environment (REDIS_URL, REDIS_PASSWORD, ...):
# see deploy/kubernetes/base/config.yaml. Mount your own over it, or point JOBQUEUE_EXPORTER_CONFIG
# elsewhere. JOBQUEUE_EXPORTER_LISTEN moves the port. The probes (this HEALTHCHECK, the kubelet's)
# ask the plain-HTTP probe listener on 9313, which serves only /healthz and /readyz, so they pass
# whatever --web.config.file demands of 9312 (TLS, client certificates); set
# JOBQUEUE_EXPORTER_HEALTH_LISTEN= (empty) to turn it off, and the HEALTHCHECK asks 9312 instead.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    JOBQUEUE_EXPORTER_CONFIG=/etc/jobqueue-exporter/config.yaml \
    JOBQUEUE_EXPORTER_HEALTH_LISTEN=0.0.0.0:9313 \
    JOBQUEUE_EXPORTER_LOG_FORMAT=json \
    JOBQUEUE_EXPORTER_REVISION="${REVISION}" \
    JOBQUEUE_EXPORTER_BUILD_TIMESTAMP="${BUILD_DATE}"
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin exporter
# Dependencies exactly as locked (requirements.txt: every package pinned, every file hash-checked;
# regenerate with scripts/lock), then the project's wheel without dependencies of its own choosing.
COPY requirements.txt /tmp/requirements.txt
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --require-hashes --no-deps --requirement /tmp/requirements.txt \
 && pip install --no-cache-dir --no-index --no-deps /wheels/*.whl \
 && rm -rf /wheels /tmp/requirements.txt
COPY deploy/kubernetes/base/config.yaml /etc/jobqueue-exporter/config.yaml
USER 10001
EXPOSE 9312
EXPOSE 9313
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-m", "exporter.healthcheck"]
ENTRYPOINT ["jobqueue-exporter"]
