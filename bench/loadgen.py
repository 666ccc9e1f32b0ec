"""A bounded HTTP load generator: N keep-alive connections on loopback, each sending GET requests back
to back for a fixed time, counted from when all are open. Used by the overload test (as a subprocess)
and by bench/bench_hostile.py.

Run: `python3 bench/loadgen.py PORT --connections 2000 --seconds 5 --path /metrics`. Prints one JSON
line: requests answered, by status, connect errors, and the answer latencies' p50/p99 in ms.
Loopback only, a hard cap on connections (5,000) and time (60 s), every socket closed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time

MAX_CONNECTIONS = 5000
MAX_SECONDS = 60.0


async def _connect(port: int, statuses: dict[str, int]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        return await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        statuses["connect_error"] = statuses.get("connect_error", 0) + 1
        return None


async def _client(streams: tuple[asyncio.StreamReader, asyncio.StreamWriter], path: str, stop_at: float,
                  out: dict[str, list[float] | dict[str, int]]) -> None:
    statuses: dict[str, int] = out["status"]  # type: ignore[assignment]
    latencies: list[float] = out["latency"]  # type: ignore[assignment]
    reader, writer = streams
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    try:
        while time.monotonic() < stop_at:
            started = time.monotonic()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1].decode()
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.monotonic() - started)
            statuses[status] = statuses.get(status, 0) + 1
            if b"connection: close" in head.lower():
                break
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        statuses["dropped"] = statuses.get("dropped", 0) + 1
    finally:
        writer.close()


async def run(port: int, connections: int, seconds: float, path: str = "/metrics") -> dict[str, object]:
    """Open `connections` (capped) and keep each busy for `seconds` (capped); the summary."""
    connections, seconds = min(connections, MAX_CONNECTIONS), min(seconds, MAX_SECONDS)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < connections + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, connections + 1000), hard))
    out: dict[str, list[float] | dict[str, int]] = {"status": {}, "latency": []}
    async with asyncio.timeout(seconds + 60):
        # every connection is open before the clock starts: on a loaded machine opening 2,000 can take
        # longer than `seconds`, and a clock started before them left no time to send a single request
        opened = await asyncio.gather(*(_connect(port, out["status"]) for _ in range(connections)))  # type: ignore[arg-type]
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(_client(streams, path, stop_at, out) for streams in opened if streams is not None))
    latency = sorted(out["latency"])  # type: ignore[type-var]

    def pct(p: float) -> float:
        return round(latency[min(len(latency) - 1, int(p * len(latency)))] * 1000, 1) if latency else 0.0

    return {"requests": len(latency), "status": out["status"], "p50_ms": pct(0.5), "p99_ms": pct(0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--path", default="/metrics")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.port, args.connections, args.seconds, args.path))))


if __name__ == "__main__":
    main()
