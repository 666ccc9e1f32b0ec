"""One connection budget for the whole process (exporter/web/limits.py `ConnectionBudget`): each listener
had its own cap of the open-file limit less 128, so floods on `listen` and `scrape_listen` together took
more descriptors than the process has; accept() failed with EMFILE and the collector could not open a
socket to a healthy Redis (`up 0` caused by HTTP clients). A real daemon with an open-file limit of 400
(soft and hard: raising the soft limit at start changes nothing), a Redis source on the shared Redis
(own key prefix) and a system source (it opens /proc files every collection), its three listeners;
more idle connections than the limit on `listen` and on `scrape_listen`, opened all at once on both (so
asyncio accepts full batches), and the daemon's Redis connection killed during the flood, so that a
collection must open a new socket. Asserted: no EMFILE in its log, the sources stay up across several
collections, a scrape on `scrape_listen` and /healthz on the probe listener answer 200, the descriptors
past the budget stay within the listeners' accept allowance, so that the room the sources need beyond
what they held at rest stays free, the descriptors come back to what they were once the flood ends, and
the daemon stops cleanly. A limit too low for a useful budget stops the daemon at start with a message
that says how to raise it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import redis
from aiohttp import web

from exporter.web.limits import (
    ACCEPT_ALLOWANCE,
    MIN_BUDGET,
    RESERVED_FDS,
    ConnectionBudget,
    GuardedAppRunner,
    GuardedSite,
    Limits,
    reserved_files,
)
from tests.support.servers import free_port, stop_daemon, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
FD_LIMIT = 400
LISTENERS = 3
BUDGET = FD_LIMIT - reserved_files(LISTENERS)  # 400 - 128 - 3 x 64 = 80
FLOOD = 350  # per listener: 700 idle connections against a limit of 400


def fd_limit() -> None:
    """In the child, before exec: soft and hard 400."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


async def get(port: int, path: str) -> tuple[int, str]:
    """One GET on a new connection: (status, body)."""
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            answer = await reader.read()
        finally:
            writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def sample(body: str, name: str, source: str) -> float | None:
    found = re.search(rf'^{name}{{[^}}]*source="{source}"[^}}]*}} (\S+)$', body, re.M)
    return float(found.group(1)) if found else None


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def wait_until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110 - polling what another loop, thread or process changes
            await asyncio.sleep(0.01)


def sample_fds(pid: int, into: list[int], stop: threading.Event) -> None:
    """The daemon's open descriptors every millisecond until `stop` (a thread listing them back to back
    held the GIL and a core from the flood it measures)."""
    while not stop.wait(0.001):
        into.append(open_fds(pid))


async def flood(port: int, held: list[asyncio.StreamWriter]) -> None:
    """FLOOD connections at once that send nothing (evicted ones are simply left; the client closes all
    later): the kernel's queue stays full, so asyncio accepts whole batches."""

    async def one() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        held.append(writer)

    await asyncio.gather(*(one() for _ in range(FLOOD)))


def kill_redis_connections(pid: int, client: redis.Redis) -> int:
    """CLIENT KILL the daemon's own connections to the shared Redis (found by their local port)."""
    killed = 0
    for conn in psutil.Process(pid).net_connections(kind="tcp"):
        if conn.raddr and conn.raddr.port == 6379:
            with contextlib.suppress(redis.ResponseError):  # it closed on its own in between
                killed += int(client.client_kill_filter(_type=None, addr=f"127.0.0.1:{conn.laddr.port}"))
    return killed


async def test_floods_on_two_listeners_stay_within_one_budget(tmp_path: Path, prefix: str,
                                                               redis_client: redis.Redis) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * FLOOD + 200:  # this test's own side of the connections
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * FLOOD + 1000), hard))
    redis_client.rpush(f"{prefix}jobs", '{"id": 1}', '{"id": 2}')
    main, scrape, probes = free_port(), free_port(), free_port()
    (tmp_path / "config.yaml").write_text(
        f"listen: 127.0.0.1:{main}\nscrape_listen: 127.0.0.1:{scrape}\nsources:\n"
        "  - {name: host, type: system, interval: 1s, timeout: 1s}\n"
        "  - {name: budget, type: redis, url: 'redis://127.0.0.1:6379/0', interval: 1s, timeout: 1s,\n"
        f"     queues: [{{layout: list, name: jobs, key: '{prefix}jobs'}}]}}\n")
    log = tmp_path / "exporter.log"
    held: list[asyncio.StreamWriter] = []
    with log.open("wb") as out:
        daemon = subprocess.Popen(  # noqa: ASYNC220 - started once, stopped in finally
            [sys.executable, "-m", "exporter", "--config", str(tmp_path / "config.yaml"),
             "--health-listen", f"127.0.0.1:{probes}"],
            cwd=ROOT, preexec_fn=fd_limit, stdout=out, stderr=subprocess.STDOUT)
        try:
            for port in (main, scrape, probes):
                await asyncio.to_thread(wait_for_port, port, 30.0)
            async with asyncio.timeout(10):  # the first collections
                while sample((await get(scrape, "/metrics"))[1], "jobqueue_source_up", "budget") != 1:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
            await asyncio.sleep(1.5)  # the daemon at rest: its sockets and files before the flood
            before = open_fds(daemon.pid)
            fds = [before]
            stop = threading.Event()
            sampling = threading.Thread(target=sample_fds, args=(daemon.pid, fds, stop))
            sampling.start()
            try:
                async with asyncio.timeout(60):
                    await asyncio.gather(flood(main, held), flood(scrape, held))
                await asyncio.sleep(0.5)  # the last batches admitted, evicted or refused
            finally:
                stop.set()
                sampling.join(10)
            assert kill_redis_connections(daemon.pid, redis_client) >= 1
            readings, healthz = [], []
            started = time.monotonic()
            while time.monotonic() - started < 5.0:  # five collections of 1 s, the flood held
                status, body = await get(scrape, "/metrics")
                readings.append((status, sample(body, "jobqueue_source_up", "budget"),
                                 sample(body, "jobqueue_source_up", "host"),
                                 sample(body, "jobqueue_last_success_timestamp_seconds", "budget"),
                                 sample(body, "jobqueue_depth", "budget")))
                healthz.append((await get(probes, "/healthz"))[0])
                fds.append(open_fds(daemon.pid))
                await asyncio.sleep(0.5)
            for writer in held:
                writer.close()
            held.clear()
            await wait_until(lambda: open_fds(daemon.pid) <= before + 2, 10.0)  # the daemon sees every close
            after = open_fds(daemon.pid)
            assert daemon.poll() is None
        finally:
            for writer in held:
                writer.close()
            daemon.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.to_thread(daemon.wait, 30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                code = await asyncio.to_thread(daemon.wait, 10)
    text = log.read_text()
    assert "Too many open files" not in text and "EMFILE" not in text and "out of system resource" not in text
    (line,) = [line for line in text.splitlines() if " open files " in line]
    assert (f"max_connections={BUDGET} connection_budget={BUDGET} reserved_listen={BUDGET // 8} "
            f"reserved_scrape_listen={BUDGET // 8} reserved_health_listen=8 reserved_sources=128 "
            f"reserved_accepts={LISTENERS * ACCEPT_ALLOWANCE}") in line, line
    assert all(r[0] == 200 for r in readings) and len(readings) >= 5, readings
    assert all(r[1] == 1 and r[2] == 1 and r[4] == 2 for r in readings), readings  # never up 0
    stamps = sorted({r[3] for r in readings if r[3] is not None})
    assert len(stamps) >= 3, readings  # several collections succeeded during the flood, the reconnect among them
    assert healthz == [200] * len(healthz)
    # Past the budget only connections accepted and not yet counted (or closing), within the allowance
    # of the listeners flooded; so the room the sources need beyond what they held at rest stayed free.
    past_budget = max(fds) - before - BUDGET
    assert past_budget <= 2 * ACCEPT_ALLOWANCE, (past_budget, before, len(fds))
    assert FD_LIMIT - max(fds) >= RESERVED_FDS - before, (max(fds), before)
    assert after <= before + 2, (before, after)
    assert code == 0


async def test_two_listeners_share_one_budget_each_evicting_its_own_idle() -> None:
    """Two guarded listeners on one budget of 16 (reserves 2 each), asserted on their counters and on
    what clients see: A's flood takes all but B's reserve; B still serves, evicting its own idle; with
    B's connections all busy its newcomer gets the JSON 503; every close gives its place back."""
    budget = ConnectionBudget(16)
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"ok": True})

    async def fast(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    runners: list[GuardedAppRunner] = []
    ports: list[int] = []
    for name in ("a", "b"):
        app = web.Application()
        app.router.add_get("/slow", slow)
        app.router.add_get("/fast", fast)
        runner = GuardedAppRunner(app, Limits(log_every=0.0), budget.share(name, 64), access_log=None)
        await runner.setup()
        ports.append(free_port())
        await GuardedSite(runner, "127.0.0.1", ports[-1]).start()
        runners.append(runner)
    (a, b), (port_a, port_b) = runners, ports
    held: list[asyncio.StreamWriter] = []

    async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        held.append(writer)
        return reader, writer

    try:
        assert (a.share.reserve, b.share.reserve, a.limits.max_connections) == (2, 2, 16)
        for _ in range(20):
            await connect(port_a)
        await wait_until(lambda: a.limits.rejected.get("idle_evicted", 0) == 6)
        assert a.limits.open == a.share.used == 14  # everything but B's reserve
        busy = [await connect(port_b) for _ in range(2)]
        await wait_until(lambda: b.share.used == 2)
        status, _ = await get(port_b, "/fast")  # B at the budget: one of its own idle connections makes room
        assert status == 200 and b.limits.rejected == {"idle_evicted": 1}
        await wait_until(lambda: b.share.used == 1)
        busy = [await connect(port_b) for _ in range(2)]  # B: one idle left and these two
        for _, writer in busy:
            writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        await wait_until(lambda: b.limits.rejected.get("idle_evicted") == 2 and b.share.used == 2)
        status, body = await get(port_b, "/fast")  # every connection of B busy, A holds the rest
        assert (status, body) == (503, '{"error": "service_unavailable"}')
        assert b.limits.rejected["connection_budget"] == 1 and budget.used == 16
        assert (await get(port_a, "/fast"))[0] == 200  # A evicts its own idle for it
        release.set()
        for reader, _ in busy:
            async with asyncio.timeout(5):
                assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    finally:
        release.set()
        for writer in held:
            writer.close()
        for runner in runners:
            await runner.cleanup()
    await wait_until(lambda: budget.used == 0 == a.limits.open == b.limits.open)


async def test_an_evicted_connection_whose_client_never_reads_frees_its_descriptor() -> None:
    """Eviction used close(), which waits for the write buffer to drain: a client that asks for a
    response larger than the socket buffers and never reads kept its descriptor open after its place
    went to a newcomer, so 12 such clients on a budget of 4 held 12 descriptors (review6). Each client
    here gets a 48 KiB body through a 4 KiB send buffer and reads nothing: the request ends (what is
    left is under asyncio's 64 KiB high-water mark, so the handler's drain returns) with the rest
    waiting in the write buffer, an idle connection. The server's descriptors must stay at the budget."""
    body = b"x" * (48 << 10)

    async def big(request: web.Request) -> web.Response:
        sock = request.transport.get_extra_info("socket") if request.transport else None
        assert sock is not None
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # the body cannot leave at once
        return web.Response(body=body)

    app = web.Application()
    app.router.add_get("/big", big)
    budget = ConnectionBudget(4)
    runner = GuardedAppRunner(app, Limits(log_every=0.0), budget.share("listen"), access_log=None)
    await runner.setup()
    port = free_port()
    await GuardedSite(runner, "127.0.0.1", port).start()
    loop = asyncio.get_running_loop()
    stuck: list[socket.socket] = []

    def server_sockets() -> int:
        return sum(1 for c in psutil.Process().net_connections("tcp")
                   if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)

    try:
        def stuck_idle() -> int:
            return sum(1 for h in runner.limits.conns if h.transport is not None
                       and h.transport.get_write_buffer_size() > 0 and not h._request_in_progress)

        for n in range(1, 13):
            client = socket.socket()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            client.setblocking(False)
            await loop.sock_connect(client, ("127.0.0.1", port))
            await loop.sock_sendall(client, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            stuck.append(client)
            # its response written (the rest stuck in the buffer) before the next one evicts it
            await wait_until(lambda n=n: stuck_idle() == min(n, 4)
                             and runner.limits.rejected.get("idle_evicted", 0) == max(0, n - 4))
        assert runner.limits.rejected.get("idle_evicted") == 8
        assert budget.used == runner.limits.open == 4
        await wait_until(lambda: server_sockets() == 4)
    finally:
        for client in stuck:
            client.close()
        await runner.cleanup()
    await wait_until(lambda: budget.used == 0)


def limited(limit: int) -> Callable[[], None]:
    """In the child, before exec: soft and hard `limit` open files."""
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@pytest.mark.parametrize(("limit", "health", "least"), [(128, False, 256), (383, True, 384)])
def test_an_open_file_limit_too_low_for_a_budget_stops_the_start(tmp_path: Path, limit: int, health: bool,
                                                                 least: int) -> None:
    """At 128 (the descriptors kept for the sources alone) the budget was 0 and every connection, probes
    included, got a 503: a pod restarted in a loop. Now the daemon exits 1 at once and says why."""
    main, scrape, probes = free_port(), free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"listen: 127.0.0.1:{main}\n" + (f"scrape_listen: 127.0.0.1:{scrape}\n" if health else "")
                      + "sources:\n  - {name: host, type: system, interval: 1s, timeout: 1s}\n")
    assert least == reserved_files(3 if health else 1) + MIN_BUDGET
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--config", str(config),
         *(["--health-listen", f"127.0.0.1:{probes}"] if health else [])],
        cwd=ROOT, preexec_fn=limited(limit), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    listeners = 3 if health else 1
    assert (f"start-up failed: {config}: the open-file limit is {limit} (hard {limit}); with {listeners} "
            f"listener(s) it must be at least {least} (128 for the sources and files, 64 per listener for "
            f"connections being accepted, 64 connections): raise it with `ulimit -n`") in result.stderr, result.stderr
    assert "LimitNOFILE=" in result.stderr and "--ulimit nofile=" in result.stderr
    assert "listening" not in result.stderr  # no port was opened


def test_the_smallest_limit_with_three_listeners_starts(tmp_path: Path) -> None:
    """At exactly the minimum the daemon serves; its budget is MIN_BUDGET."""
    main, scrape, probes = free_port(), free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"listen: 127.0.0.1:{main}\nscrape_listen: 127.0.0.1:{scrape}\n"
                      "sources:\n  - {name: host, type: system, interval: 1s, timeout: 1s}\n")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--config", str(config), "--health-listen", f"127.0.0.1:{probes}"],
        cwd=ROOT, preexec_fn=limited(reserved_files(3) + MIN_BUDGET), stderr=subprocess.PIPE, text=True)
    try:
        for port in (main, scrape, probes):
            wait_for_port(port, 30.0)
    finally:
        log = stop_daemon(daemon)
    assert daemon.returncode == 0, log
    (line,) = [line for line in log.splitlines() if " open files " in line]
    assert f"max_connections=64 connection_budget={MIN_BUDGET} reserved_listen=8 " in line, line
