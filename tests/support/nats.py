"""A nats-server with JetStream of our own on a free port, for tests and benchmarks that stop it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.servers import free_port, wait_for_port


class NatsServer:
    """nats-server -js on a free port with its store in `workdir`; stop and start keep the data."""

    def __init__(self, workdir: Path, port: int | None = None, extra_config: str = "") -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.extra_config = extra_config  # nats-server config text, e.g. an `authorization` block
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        store = self.workdir / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nats.conf"
        conf.write_text(f'listen: "127.0.0.1:{self.port}"\njetstream {{ store_dir: "{store}" }}\n{self.extra_config}\n')
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
            self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the port stays open but nothing answers (a hung server)."""
        assert self.proc is not None
        self.proc.send_signal(19)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(18)
