"""Idle cost of the daemon on the embedded default config (host + one Redis queue), beside redis_exporter.

Run: `python3 bench/bench_idle.py` (add `--tree /work/main` to measure another checkout of the
exporter as a second row, e.g. the code before a change). The default config reads the local Redis
(127.0.0.1:6379), which must be running. For each tree it starts `python3 -m exporter --listen
127.0.0.1:<free port>` with the default config, and measures:
  * start: from spawning the process to the first 200 of /healthz, and `import exporter.cli` alone;
  * idle RSS and threads (/proc/<pid>/status) once /readyz says every source was collected, after a
    few seconds of rest, and again after 3 scrapes of /metrics;
then Debian's prometheus-redis-exporter on the same Redis (RSS and threads after one scrape), and
what each library the daemon imports costs in RSS and time in a fresh interpreter (cumulative, in
import order). Writes bench/results/idle.json; it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import ast
import atexit
import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REDIS = "redis://127.0.0.1:6379"  # the one the embedded default config reads
# What the daemon imports, heaviest first as `python3 -X importtime -m exporter` shows them; each row
# adds one to the interpreter of the rows above it.
IMPORTS = ("asyncio", "pydantic", "yaml", "aiohttp.web", "prometheus_client", "psutil",
           "exporter.config", "exporter.cli")
LIBRARIES = 6  # the first IMPORTS: the floor no exporter code can go under while it uses them
# pydantic imports its schema builder (and plugin loader) only when a first model is defined: this
# one-field model is the floor of any pydantic config, not a cost of the exporter's models
FIRST_MODEL = ("class _M(pydantic.BaseModel):\n"
               "    x: int\n"
               "_M(x=1)\n")


_CACHES: dict[Path, Path] = {}


def tree_env(tree: Path) -> dict[str, str]:
    """The environment a run of `tree` gets: its exporter package compiled, as pip installs it.

    The package is copied to a directory of its own and compiled there, so the checkout gets no
    .pyc; the interpreter's and the libraries' own .pyc are used as they are."""
    if tree not in _CACHES:
        copy = Path(tempfile.mkdtemp(prefix="bench-idle-"))
        atexit.register(shutil.rmtree, copy, ignore_errors=True)  # also when a run fails
        shutil.copytree(tree / "exporter", copy / "exporter", ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(copy / "exporter")], check=True)
        _CACHES[tree] = copy
    return {**os.environ, "PYTHONPATH": str(_CACHES[tree])}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def status_of(pid: int) -> tuple[float, int]:
    """(RSS in MB, threads) of a live process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


def get(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def wait_for(url: str, want: int, deadline: float) -> None:
    while get(url) != want:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer {want}")
        time.sleep(0.02)


def import_seconds(tree: Path, module: str, rounds: int) -> float:
    """Median wall time of `python3 -c 'import <module>'`, interpreter start included."""
    env = tree_env(tree)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], env=env, cwd=env["PYTHONPATH"], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_daemon(tree: Path, rest: float, rounds: int) -> dict[str, float]:
    port = free_port()
    env = {**tree_env(tree), "PYTHONHASHSEED": "0"}
    args = [sys.executable, "-m", "exporter", "--listen", f"127.0.0.1:{port}"]
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, cwd=env["PYTHONPATH"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        wait_for(f"http://127.0.0.1:{port}/healthz", 200, deadline)
        serving = time.perf_counter() - started
        wait_for(f"http://127.0.0.1:{port}/readyz", 200, deadline)
        time.sleep(rest)
        rss, threads = status_of(proc.pid)
        for _ in range(3):
            get(f"http://127.0.0.1:{port}/metrics")
        scraped_rss, scraped_threads = status_of(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {"serving_s": serving, "import_s": import_seconds(tree, "exporter.cli", rounds), "rss_mb": rss,
            "threads": threads, "scraped_rss_mb": scraped_rss, "scraped_threads": scraped_threads}


def measure_redis_exporter(rest: float) -> dict[str, float] | None:
    binary = shutil.which("prometheus-redis-exporter")
    if binary is None:
        return None
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([binary, "-redis.addr", REDIS, "-web.listen-address",
                             f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/", 200, time.monotonic() + 30)
        serving = time.perf_counter() - started
        get(f"http://127.0.0.1:{port}/metrics")
        time.sleep(rest)
        rss, threads = status_of(proc.pid)
        get(f"http://127.0.0.1:{port}/metrics")
        scraped_rss, scraped_threads = status_of(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    return {"serving_s": serving, "rss_mb": rss, "threads": threads, "scraped_rss_mb": scraped_rss,
            "scraped_threads": scraped_threads}


def import_costs(tree: Path) -> list[tuple[str, float, float]]:
    """(module, RSS added in MB, time added in ms): each module imported after those above it."""
    env = tree_env(tree)
    probe = ("import resource, sys, time\n"
             "def rss():\n"
             "    return int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) / 1024\n"
             "out = [('python3', rss(), 0.0)]\n"
             f"for name in {IMPORTS[:LIBRARIES]!r}:\n"
             "    t = time.perf_counter(); __import__(name); out.append((name, rss(), time.perf_counter() - t))\n"
             "import pydantic\n"
             f"t = time.perf_counter()\n{FIRST_MODEL}out.append(('first model', rss(), time.perf_counter() - t))\n"
             f"for name in {IMPORTS[LIBRARIES:]!r}:\n"
             "    t = time.perf_counter(); __import__(name); out.append((name, rss(), time.perf_counter() - t))\n"
             "import exporter.config\n"
             "t = time.perf_counter(); exporter.config.default_config()\n"
             "out.append(('default config', rss(), time.perf_counter() - t))\n"
             "print(out)\n")
    answer = subprocess.run([sys.executable, "-c", probe], env=env, cwd=env["PYTHONPATH"], check=True,
                            capture_output=True, text=True)
    rows = ast.literal_eval(answer.stdout)
    costs = [(rows[0][0], rows[0][1], 0.0)]
    for (_, before, _), (name, after, took) in itertools.pairwise(rows):
        costs.append((name, after - before, took * 1000))
        if name == IMPORTS[LIBRARIES - 1]:  # the libraries alone, interpreter included
            costs.append(("floor", after, sum(t for _, _, t in rows[1:LIBRARIES + 1]) * 1000))
    return costs


LABELS = {"python3": "interpreter alone",
          "floor": "= the library floor: interpreter and the libraries above, no exporter code (total)",
          "first model": "a first pydantic model (one field, validated: pydantic's schema builder)",
          "default config": "`default_config()` (the validators of the types it uses)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], help="another checkout to measure (e.g. /work/main)")
    parser.add_argument("--rest", type=float, default=5.0, help="seconds idle before measuring")
    parser.add_argument("--rounds", type=int, default=5, help="runs of the import timing")
    parser.add_argument("--runs", type=int, default=1, help="daemon starts per tree (figures become ranges)")
    args = parser.parse_args()
    trees = [("this tree", ROOT), *((f"`{t}`", Path(t)) for t in args.tree)]
    rows: list[list[str]] = []
    raw: dict[str, list[dict[str, float]]] = {}
    for label, tree in trees:
        runs = [measure_daemon(tree, args.rest, args.rounds) for _ in range(args.runs)]
        raw[label] = runs
        rows.append([f"jobqueue-exporter, {label}", span(runs, "rss_mb", "{:.0f} MB"),
                     span(runs, "scraped_rss_mb", "{:.0f} MB"), span(runs, "threads", "{:.0f}"),
                     span(runs, "serving_s", "{:.2f} s"), span(runs, "import_s", "{:.2f} s")])
    peer = measure_redis_exporter(args.rest)
    if peer is not None:
        raw["redis_exporter"] = [peer]
        rows.append(["prometheus-redis-exporter", f"{peer['rss_mb']:.0f} MB", f"{peer['scraped_rss_mb']:.0f} MB",
                     f"{peer['threads']:.0f}", f"{peer['serving_s']:.2f} s", "-"])
    costs = import_costs(ROOT)
    print(json.dumps({"runs": raw, "imports": costs}, indent=2), file=sys.stderr)
    load = os.getloadavg()
    result = {
        "bench": "idle",
        "command": "python3 bench/bench_idle.py" + "".join(f" --tree {t}" for t in args.tree),
        "measured": datetime.now(UTC).strftime("%Y-%m-%d"),
        "conditions": f"{os.cpu_count()} vCPU VM shared with other work, load average {load[0]:.1f} "
                      f"at the end, Python {sys.version.split()[0]}; the embedded default config on {REDIS}; "
                      f"{args.runs} start(s) per tree",
        "tables": {
            "idle": {"columns": ["", "idle RSS", "RSS after 3 scrapes", "threads", "start to serving",
                                 "`import exporter.cli`"], "rows": rows},
            "imports": {"columns": ["imported (after the rows above)", "RSS added", "time added"],
                        "rows": [[LABELS.get(name, f"`{name}`"), f"{mb:.1f} MB",
                                  "-" if name == "python3" else f"{ms:.0f} ms"] for name, mb, ms in costs]},
        },
    }
    out = ROOT / "bench" / "results" / "idle.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result["tables"], indent=2))


def span(runs: list[dict[str, float]], key: str, fmt: str) -> str:
    low, high = min(r[key] for r in runs), max(r[key] for r in runs)
    return fmt.format(low) if fmt.format(low) == fmt.format(high) else f"{fmt.format(low)}-{fmt.format(high)}"


if __name__ == "__main__":
    main()
