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

from exporter.pools import LOOKUP_TIMEOUT, Resolver

ROOT = Path(__file__).resolve().parents[2]


async def test_a_hung_name_costs_one_bound_and_blocks_no_other_name() -> None:
    release = threading.Event()
    calls: list[str] = []

    def lookup(host: str, *args: Any) -> list[Any]:
        calls.append(host)
        if host == "hung.example":
            release.wait(30)
        return [("ok", host)]

    resolver = Resolver(lookup, workers=2)
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
from exporter.pools import LOOKUP_TIMEOUT, Resolver
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
