"""The process-wide connection budget's arithmetic (exporter/web/limits.py `ConnectionBudget`): the total
from the open-file limit, reserves bounded by an eighth, a reserve no other listener can take, the rest
first come, counts that stay exact when threads take and give at the same time, and an eviction that hands
its place straight to the newcomer (a guarded listener on loopback)."""

from __future__ import annotations

import asyncio
import random
import resource
import sys
import threading
from collections.abc import Callable, Iterator

import pytest
from aiohttp import web

from exporter.web.limits import (
    ACCEPT_ALLOWANCE,
    ACCEPT_BATCH,
    RESERVED_FDS,
    ConnectionBudget,
    GuardedAppRunner,
    GuardedSite,
    Limits,
    Share,
    reserved_files,
)
from tests.support.servers import free_port


def take_all(share: Share, most: int = 10_000) -> int:
    """Take until refused; how many were taken."""
    taken = 0
    while taken < most and share.take():
        taken += 1
    return taken


def test_the_total_is_the_soft_open_file_limit_less_the_reserve() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert (RESERVED_FDS, ACCEPT_BATCH, ACCEPT_ALLOWANCE) == (128, 16, 64)
    assert ConnectionBudget.for_open_files().total == soft - reserved_files(1) == soft - 128 - 64
    assert ConnectionBudget.for_open_files(listeners=3).total == soft - 128 - 3 * 64
    assert ConnectionBudget(-5).total == 0  # a limit under the reserve: no connection rather than a negative


def test_reserves_are_at_most_an_eighth_of_the_budget() -> None:
    budget = ConnectionBudget(272)  # an open-file limit of 400
    assert [budget.share(n, r).reserve for n, r in (("a", 64), ("b", 64), ("c", 8), ("d", -3))] == [34, 34, 8, 0]
    assert ConnectionBudget(7).share("a", 8).reserve == 0
    assert budget.describe() == {"connection_budget": 272, "reserved_a": 34, "reserved_b": 34, "reserved_c": 8,
                                 "reserved_d": 0}


def test_one_listener_alone_has_the_whole_budget_and_a_close_frees_one() -> None:
    budget = ConnectionBudget(10)
    only = budget.share("listen", 64)
    assert take_all(only) == 10 and budget.used == 10
    only.give()
    assert budget.used == 9
    assert only.take() and not only.take()


def test_a_flood_on_one_listener_leaves_the_others_their_reserves() -> None:
    budget = ConnectionBudget(272)
    main, scrape, probes = budget.share("listen", 64), budget.share("scrape", 64), budget.share("probes", 8)
    assert take_all(main) == 272 - 34 - 8  # everything but the others' reserves
    assert take_all(probes) == 8
    assert take_all(scrape) == 34
    assert budget.used == 272
    for _ in range(5):
        main.give()
    assert take_all(scrape) == 5  # the first-come part is anyone's
    assert take_all(main) == 0 and take_all(probes) == 0
    for _ in range(3):
        probes.give()
    assert take_all(main) == 0 and take_all(scrape) == 0  # a probe's freed place stays the probes'
    assert take_all(probes) == 3


def test_the_invariant_over_random_takes_and_gives() -> None:
    """held + every unused reserve <= total; a share under its reserve can always take one more."""
    rng = random.Random(20)
    for total in (0, 1, 7, 16, 100, 272):
        budget = ConnectionBudget(total)
        shares = [budget.share("a", 64), budget.share("b", 64), budget.share("c", 8)]
        for _ in range(2_000):
            share = rng.choice(shares)
            if share.used and rng.random() < 0.45:
                share.give()
                continue
            below = share.used < share.reserve
            assert share.take() or not below, (total, [(s.used, s.reserve) for s in shares])
            held = sum(s.used for s in shares)
            assert held + sum(max(0, s.reserve - s.used) for s in shares) <= total
            assert budget.used == held <= total


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    """Thread switches as often as CPython allows, so an unlocked read-add-write would lose updates."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("tiny_switch_interval")
def test_threads_taking_at_once_never_pass_the_total() -> None:
    budget = ConnectionBudget(50)
    shares = [budget.share(f"t{i}") for i in range(4)]
    barrier = threading.Barrier(len(shares) + 1)
    taken = [0] * len(shares)

    def work(i: int) -> None:
        for _ in range(200):
            barrier.wait()
            taken[i] = take_all(shares[i], most=40)  # 4 x 40 tries for 50 places
            barrier.wait()
            barrier.wait()  # the main thread has checked the round
            for _ in range(taken[i]):
                shares[i].give()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(shares))]
    for thread in threads:
        thread.start()
    try:
        for _ in range(200):
            barrier.wait()
            barrier.wait()
            assert sum(taken) == 50 == budget.used, taken  # exactly the total: none lost, none over
            assert [s.used for s in shares] == taken
            barrier.wait()
    except BaseException:
        barrier.abort()  # a failed round: the workers waiting at the barrier end (BrokenBarrierError)
        raise
    finally:
        for thread in threads:
            thread.join(10)
    assert budget.used == 0


class HookedBudget(ConnectionBudget):
    """A budget that runs `after_give` once a place is given back, outside its lock: what another thread
    may do in that moment happens there, deterministically."""

    after_give: Callable[[], None] | None = None

    def _give(self, share: Share) -> None:
        super()._give(share)
        if self.after_give is not None:
            self.after_give()


async def test_an_eviction_hands_its_place_to_the_newcomer_with_no_window() -> None:
    """A listener at the budget's total, all idle: a newcomer evicts one and takes its place without the
    place ever being free. Before, the eviction gave it back and the newcomer took it afterwards; a take
    on the scrape thread in between (run here by the hook, on a thread of its own) left an idle connection
    closed and the newcomer refused with a 503. The evicted connection's close gives nothing back."""
    budget = HookedBudget(4)
    listener, other = budget.share("listen"), budget.share("scrape_listen")
    taken_elsewhere: list[bool] = []

    def take_on_another_thread() -> None:
        thread = threading.Thread(target=lambda: taken_elsewhere.append(other.take()))
        thread.start()
        thread.join(5)

    async def fast(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/fast", fast)
    runner = GuardedAppRunner(app, Limits(log_every=0.0), listener, access_log=None)
    await runner.setup()
    port = free_port()
    await GuardedSite(runner, "127.0.0.1", port).start()
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        async with asyncio.timeout(10):
            for _ in range(4):
                held.append(await asyncio.open_connection("127.0.0.1", port))
            while budget.used < 4:  # noqa: ASYNC110 - the server's side of the same loop
                await asyncio.sleep(0.01)
            assert listener.used == budget.total == runner.limits.open == 4
            budget.after_give = take_on_another_thread
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            held.append((reader, writer))
            writer.write(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")  # kept alive: no close gives a place back
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            assert await reader.readexactly(len(b'{"ok": true}')) == b'{"ok": true}'
            evicted = await asyncio.wait_for(held[0][0].read(), 5)  # the least recently active one
            assert evicted == b""  # closed without an answer; its connection_lost has run
            await asyncio.sleep(0.05)
            assert taken_elsewhere == [] and other.used == 0  # the place was never free to take
            assert listener.used == budget.used == runner.limits.open == len(runner.limits.conns) == 4
            assert runner.limits.rejected == {"idle_evicted": 1}
            budget.after_give = None
    finally:
        budget.after_give = None
        for _, writer in held:
            writer.close()
        await runner.cleanup()
    assert budget.used == 0 == listener.used == runner.limits.open  # each place given back once, not twice
