# syntax=docker/dockerfile:1
# Build stage: wheels for the project and every dependency (all of them ship manylinux wheels, so no
# compiler is needed), plus a requirements file naming each wheel exactly.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip wheel --no-cache-dir --wheel-dir /wheels . \
 && find /wheels -name '*.whl' -printf '/wheels/%f\n' > /wheels/requirements.txt

# Runtime stage: only the wheels, a non-root user, no compiler.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin exporter
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --requirement /wheels/requirements.txt \
 && rm -rf /wheels
COPY config.example.yaml /etc/jobqueue-exporter/config.yaml
# the example's PostgreSQL source checks these migration files (seed 002's `schema` block)
COPY scripts/demo/migrations /etc/jobqueue-exporter/migrations
ENV JQ_MIGRATIONS_DIR=/etc/jobqueue-exporter/migrations
USER 10001
EXPOSE 9312
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:9312/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["jobqueue-exporter"]
CMD ["--config", "/etc/jobqueue-exporter/config.yaml", "--log-format", "json"]
