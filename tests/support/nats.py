"""A nats-server with JetStream of our own on a free port, for tests and benchmarks that stop it."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.servers import ServerProcess


class NatsServer(ServerProcess):
    """nats-server -js on a free port with its store in `workdir`; stop and start keep the data."""

    def __init__(self, workdir: Path, port: int | None = None, extra_config: str = "") -> None:
        super().__init__(workdir, port)
        self.extra_config = extra_config  # nats-server config text, e.g. an `authorization` block

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        store = self.workdir / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nats.conf"
        conf.write_text(f'listen: "127.0.0.1:{self.port}"\njetstream {{ store_dir: "{store}" }}\n{self.extra_config}\n')
        return [binary, "-c", str(conf)]

    def start(self) -> NatsServer:
        super().start()
        return self
