"""A real Redis Cluster (three primaries made by `redis-cli --cluster create`) and a real Sentinel
watching a master with one replica, each on free ports in the test's own directory."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

from tests.support.servers import RedisServer, ServerProcess
from tests.support.tls import Pki


def until(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} after {timeout}s")


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class LocalCluster:
    """Three cluster-enabled redis-servers joined into one cluster with all 16384 slots covered."""

    def __init__(self, workdir: Path, size: int = 3, tls: Pki | None = None) -> None:
        """With `tls`, every node speaks TLS only (clients and the cluster bus), with the test CA's certificate."""
        self.nodes: list[RedisServer] = []
        self.tls = tls
        self.ssl: dict[str, Any] = {"ssl": True, "ssl_ca_certs": str(tls.ca)} if tls else {}
        for i in range(size):
            d = workdir / f"node{i}"
            d.mkdir(parents=True, exist_ok=True)
            port = _cluster_port()
            options = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                       "--cluster-node-timeout", "5000"]
            if tls is not None:
                options += ["--port", "0", "--tls-port", str(port), "--tls-cluster", "yes", "--tls-cert-file",
                            str(tls.server_cert), "--tls-key-file", str(tls.server_key), "--tls-ca-cert-file",
                            str(tls.ca), "--tls-auth-clients", "no"]
            self.nodes.append(RedisServer(d, port=port, extra=options))

    def start(self) -> LocalCluster:
        for node in self.nodes:
            node.start()
        cli = [shutil.which("redis-cli") or "/usr/bin/redis-cli"]
        if self.tls is not None:
            cli += ["--tls", "--cacert", str(self.tls.ca)]
        subprocess.run([*cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes), "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        for node in self.nodes:
            conn = self.conn(node)
            until(lambda c=conn: c.cluster("info")["cluster_state"] == "ok", "cluster not ok")
            conn.close()
        return self

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.nodes[0].port}"

    def conn(self, node: RedisServer) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=node.port, decode_responses=True, **self.ssl)

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.nodes[0].port, decode_responses=True, **self.ssl)

    def owner(self, key: str) -> RedisServer:
        """The node that serves `key` now."""
        slot = self.client().keyslot(key)
        conn = self.conn(self.nodes[0])
        for start, end, primary, *_ in conn.execute_command("CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                return next(n for n in self.nodes if n.port == int(primary[1]))
        raise LookupError(slot)

    def move_slot(self, key: str, target: RedisServer, finish: bool = True) -> None:
        """Migrate the slot of `key` (and its keys) to `target`, the way redis-cli --cluster reshard does;
        with `finish=False` the slot stays half-moved, so its old node answers ASK."""
        source = self.owner(key)
        slot = self.client().keyslot(key)
        src, dst = self.conn(source), self.conn(target)
        src_id, dst_id = src.execute_command("CLUSTER", "MYID"), dst.execute_command("CLUSTER", "MYID")
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        if keys:
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
        if finish:
            for node in self.nodes:
                self.conn(node).execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _tls_options(tls: Pki | None, port: int) -> list[str]:
    """redis-server options for TLS only on `port`, replication over TLS too."""
    if tls is None:
        return []
    return ["--port", "0", "--tls-port", str(port), "--tls-replication", "yes", "--tls-cert-file",
            str(tls.server_cert), "--tls-key-file", str(tls.server_key), "--tls-ca-cert-file", str(tls.ca),
            "--tls-auth-clients", "no"]


class SentinelProcess(ServerProcess):
    """`redis-server sentinel.conf --sentinel` monitoring one master under `name` (over TLS with `tls`)."""

    def __init__(self, workdir: Path, master_port: int, name: str = "jobs", tls: Pki | None = None) -> None:
        super().__init__(workdir)
        self.master_port = master_port
        self.name = name
        self.tls = tls

    def command(self) -> list[str]:
        conf = self.workdir / "sentinel.conf"
        conf.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                        f"sentinel monitor {self.name} 127.0.0.1 {self.master_port} 1\n"
                        f"sentinel down-after-milliseconds {self.name} 2000\n")
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        return [binary, str(conf), "--sentinel", *_tls_options(self.tls, self.port)]

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}"


class SentinelSetup:
    """A master, one replica of it, and a sentinel that knows both; with `tls`, all of them TLS-only."""

    def __init__(self, workdir: Path, tls: Pki | None = None) -> None:
        for sub in ("master", "replica", "sentinel"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        self.ssl: dict[str, Any] = {"ssl": True, "ssl_ca_certs": str(tls.ca)} if tls else {}
        self.master = RedisServer(workdir / "master")
        self.master.extra = _tls_options(tls, self.master.port)
        self.replica = RedisServer(workdir / "replica")
        self.replica.extra = [*_tls_options(tls, self.replica.port), "--replicaof", "127.0.0.1", str(self.master.port)]
        self.sentinel = SentinelProcess(workdir / "sentinel", self.master.port, tls=tls)

    def conn(self, server: ServerProcess) -> redis.Redis:
        return redis.Redis(port=server.port, decode_responses=True, **self.ssl)

    def start(self) -> SentinelSetup:
        self.master.start()
        self.replica.start()
        replica = self.conn(self.replica)
        until(lambda: replica.info("replication")["master_link_status"] == "up", "replica not in sync")
        self.sentinel.start()
        sentinel = self.conn(self.sentinel)
        until(lambda: any(int(r["port"]) == self.replica.port and "s_down" not in r["flags"]
                           for r in sentinel.sentinel_slaves(self.sentinel.name)), "sentinel does not see the replica")
        return self

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.master):
            server.stop()
