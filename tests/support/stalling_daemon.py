"""The real daemon (`exporter.cli.main`) with two faults a test can trigger by signal, for the probes:

- SIGUSR1: the collector loop blocks (a `time.sleep` on its thread, as a source calling blocking code
  would): every source loop stops making progress while the process and its web loop answer.
- SIGUSR2: the collector thread dies (SystemExit raised on its loop, which asyncio lets through).

Run as `python -m tests.support.stalling_daemon ARGS...` (the exporter's own arguments). Nothing else
differs from `python -m exporter`.
"""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType
from typing import Any

from exporter import cli
from exporter.scheduler import Scheduler

STARTED: list[Scheduler] = []
_start = Scheduler.start


def _keep(self: Scheduler, threaded: bool = False) -> None:
    """Scheduler.start, remembering the scheduler so that a signal can reach its collector loop."""
    STARTED.append(self)
    _start(self, threaded)


def _on_collector(callback: Any) -> None:
    if STARTED and STARTED[-1]._collector is not None:
        STARTED[-1]._collector.call_soon_threadsafe(callback)


def _die() -> None:
    raise SystemExit("test: the collector thread ends")


def block(signum: int, frame: FrameType | None) -> None:
    _on_collector(lambda: time.sleep(3600))


def kill(signum: int, frame: FrameType | None) -> None:
    _on_collector(_die)


if __name__ == "__main__":
    Scheduler.start = _keep  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR1, block)
    signal.signal(signal.SIGUSR2, kill)
    sys.exit(cli.main(sys.argv[1:]))
