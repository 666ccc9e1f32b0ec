"""Throwaway backend servers for tests that stop, hang or restart a backend.

They run on free ports in temporary directories, so the shared services on the default ports
are never touched.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def terminate(proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`: no test leaves a process behind, even a hung one."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def stop_daemon(daemon: subprocess.Popen[str]) -> str:
    """SIGTERM a daemon started with `stderr=PIPE, text=True` and return its log (killed after 30 s)."""
    daemon.send_signal(signal.SIGTERM)
    try:
        return daemon.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        daemon.kill()
        return daemon.communicate(timeout=10)[1]


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts connections on the port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class ServerProcess:
    """A server of our own on a free port: start, stop, pause (a hung server) and resume it.

    Subclasses say how to start it (`command`); the same port is kept across restarts.
    """

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> ServerProcess:
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(self.port)
        except BaseException:  # no fixture teardown runs for a server that never came up: stop it here
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM, and SIGKILL if it has not ended in 15 s (a paused or wedged server)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)  # a paused server handles no SIGTERM
            terminate(self.proc)
            self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the port stays open but nothing answers (a hung backend)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


class RedisServer(ServerProcess):
    """A redis-server of our own, keeping nothing on disk; `extra` adds command-line options."""

    def __init__(self, workdir: Path, port: int | None = None, extra: list[str] | None = None) -> None:
        super().__init__(workdir, port)
        self.extra = extra or []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def db(self, n: int) -> str:
        """The URL of database `n` of this server (a test module gives each test a database of its own)."""
        return self.url.removesuffix("/0") + f"/{n}"

    def command(self) -> list[str]:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        return [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir), *self.extra]


class TlsRedisServer(RedisServer):
    """TLS only (`--port 0`): `client_auth` asks clients for a certificate signed by the CA."""

    def __init__(self, workdir: Path, cert: Path, key: Path, ca: Path, client_auth: bool = False) -> None:
        super().__init__(workdir)
        self.extra = ["--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
                      "--tls-auth-clients", "yes" if client_auth else "no"]

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--port") + 1] = "0"
        return [*cmd, "--tls-port", str(self.port)]

    def start(self) -> RedisServer:
        super().start()
        return self


def redis_per_module(name: str) -> Callable[[pytest.TempPathFactory], Iterator[RedisServer]]:
    """A module-scoped fixture: a redis-server of the module's own (for libraries whose keys cannot be
    prefixed, e.g. arq and huey), stopped after the module. Use: `server = redis_per_module("libs")`."""

    @pytest.fixture(scope="module")
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
        server = RedisServer(tmp_path_factory.mktemp(name)).start()
        try:
            yield server
        finally:
            server.stop()

    return server  # type: ignore[no-any-return]
