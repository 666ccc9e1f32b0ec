"""The resolver's own threads (issue 15, item 1): a lookup that never returns costs its caller the
bound, later callers of the same name nothing, other names nothing, and it cannot hold up exit."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from exporter.pools import LOOKUP_FAILURES, LOOKUP_TIMEOUT, Resolver

ROOT = Path(__file__).resolve().parents[2]


async def test_a_hung_name_costs_one_bound_and_blocks_no_other_name() -> None:
    release = threading.Event()
    calls: list[str] = []

    def lookup(host: str, *args: Any) -> list[Any]:
        calls.append(host)
        if host == "hung.example":
            release.wait(30)
        return [("ok", host)]

    resolver = Resolver(lookup)
    LOOKUP_TIMEOUT.set(0.2)
    try:
        for _ in range(3):  # the first waits the bound; the next ones fail at once on the pending lookup
            with pytest.raises(socket.gaierror, match=r"name lookup of 'hung\.example' took over 0\.2s"):
                await resolver.getaddrinfo("hung.example", 80)
        async with asyncio.timeout(5):
            assert await resolver.getaddrinfo("fine.example", 80) == [("ok", "fine.example")]
        assert calls.count("hung.example") == 1
    finally:
        release.set()
        resolver.close()


def test_a_hung_lookup_does_not_hold_up_exit() -> None:
    code = """
import asyncio, threading
from exporter.pools import LOOKUP_FAILURES, LOOKUP_TIMEOUT, Resolver
never = threading.Event()
resolver = Resolver(lambda *a: never.wait())
LOOKUP_TIMEOUT.set(0.1)
try:
    asyncio.run(resolver.getaddrinfo("hung.example", 80))
except OSError as err:
    print(type(err).__name__)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20, cwd=ROOT,
                            env={"PYTHONPATH": str(ROOT)})
    assert (result.returncode, result.stdout) == (0, "gaierror\n")


async def test_addresses_and_hosts_file_names_never_reach_the_lookup(tmp_path: Path) -> None:
    """Issue 20 item 2: an address, or a name of /etc/hosts, is answered here, whatever hangs."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost db.local  # comment\n::1 localhost ip6-localhost\n")
    never = threading.Event()
    calls: list[str] = []

    def lookup(host: str, *args: Any) -> list[Any]:
        calls.append(host)
        never.wait(30)
        return []

    resolver = Resolver(lookup, hosts_file=hosts)
    LOOKUP_TIMEOUT.set(0.2)
    try:
        async with asyncio.timeout(5):
            answer = await resolver.getaddrinfo("DB.local", 6379, type=socket.SOCK_STREAM)
            assert [a[4] for a in answer] == [("127.0.0.1", 6379)]
            answer = await resolver.getaddrinfo("localhost", 6379, type=socket.SOCK_STREAM)
            assert [a[4][:2] for a in answer] == [("127.0.0.1", 6379), ("::1", 6379)]
            answer = await resolver.getaddrinfo("10.1.2.3", 80, type=socket.SOCK_STREAM)
            assert [a[4] for a in answer] == [("10.1.2.3", 80)]
        assert calls == []
    finally:
        never.set()


async def test_answers_are_remembered_and_served_stale_when_the_dns_hangs() -> None:
    hang = threading.Event()
    calls: list[str] = []

    def lookup(host: str, *args: Any) -> list[Any]:
        calls.append(host)
        if hang.is_set():
            threading.Event().wait(30)
        return [("answer", host)]

    resolver = Resolver(lookup, remember=60.0)
    LOOKUP_TIMEOUT.set(0.2)
    assert await resolver.getaddrinfo("svc.example", 80) == [("answer", "svc.example")]
    assert await resolver.getaddrinfo("svc.example", 80) == [("answer", "svc.example")]
    assert calls == ["svc.example"]  # the second came from memory
    resolver.remember = 0.0
    hang.set()
    # the DNS server hangs now: the last answer is used (RFC 8767), and the failure is not recorded
    failures: list[str] = []
    LOOKUP_FAILURES.set(failures)
    assert await resolver.getaddrinfo("svc.example", 80) == [("answer", "svc.example")]
    assert failures == []
    with pytest.raises(socket.gaierror):
        await resolver.getaddrinfo("other.example", 80)
    assert failures == ["other.example: name lookup of 'other.example' took over 0.2s"]
