"""How low the idle daemon could go without aiohttp: the floor under any HTTP server we could write.

Run: `python3 bench/bench_idle_floor.py` (the local Redis on 127.0.0.1:6379 must be running). Issue 19
asks for idle RSS <= 40 MB on the embedded default config; `bench_idle.py` shows the libraries alone
hold more than that. This benchmark measures the other side: the daemon's collection with NO HTTP
server library in the process. Each run is a fresh interpreter that builds the default config and its
scheduler exactly as `exporter.cli` does, lets it collect for `--rest` seconds on its own thread, and
reads RSS and threads from /proc; the exporter's code is compiled first, as installed (see
bench_idle.tree_env). Two variants, `--runs` each:
  * as built: aiohttp imported by the exporter's modules as today, but no listener started;
  * without aiohttp: an import hook answers every `aiohttp` import with an inert module, so the
    exporter's modules load and nothing of aiohttp (nor what it pulls in: email, http.cookies,
    mimetypes, attrs, yarl, multidict) is in the process. A replacement server would add its own
    parser, buffers and code on top of this figure, so it is a lower bound, not an estimate.
Writes bench/results/idle_floor.json; it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_idle import tree_env  # noqa: E402  (the exporter's code compiled, as installed)

# The probe each run executes: the scheduler of the default config, collecting, with or without aiohttp.
PROBE = '''
import asyncio, gc, importlib.abc, importlib.machinery, os, sys, time, types

class _Inert:
    """Whatever the exporter's modules do with an aiohttp name at import time: call, subscript, subclass."""
    def __init__(self, *args, **kwargs): pass
    def __call__(self, *args, **kwargs):
        return args[0] if len(args) == 1 and callable(args[0]) and not kwargs else _Inert()
    def __getattr__(self, name): return _Inert()
    def __getitem__(self, key): return _Inert()
    def __mro_entries__(self, bases): return (_Base,)
    def __or__(self, other): return _Inert()
    __ror__ = __or__

class _Base:
    def __init__(self, *args, **kwargs): pass
    def __class_getitem__(cls, key): return cls

class _Module(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"): raise AttributeError(name)
        return _Inert()

class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "aiohttp" or name.startswith("aiohttp."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None
    def create_module(self, spec): return _Module(spec.name)
    def exec_module(self, module): module.__path__ = []

if WITHOUT_AIOHTTP:
    sys.meta_path.insert(0, _Finder())

from exporter import cli
from exporter.config import default_config

async def collect():
    cli.steady_heap()
    scheduler = cli.build_scheduler(default_config())
    scheduler.start(threaded=True)
    await asyncio.sleep(REST)
    gc.collect()
    gc.freeze()
    ready = all(s.status.collections > 0 for s in scheduler.snapshot.sources.values())
    fields = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    print((int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"]), ready,
           sorted(m for m in ("aiohttp", "email", "attr", "yarl", "multidict")
                  if getattr(sys.modules.get(m), "__file__", None))))
    sys.stdout.flush()
    os._exit(0)

asyncio.new_event_loop().run_until_complete(collect())
'''


def run_probe(tree: Path, without_aiohttp: bool, rest: float) -> tuple[float, int, bool, list[str]]:
    env = {**tree_env(tree), "PYTHONHASHSEED": "0"}
    code = f"WITHOUT_AIOHTTP = {without_aiohttp!r}\nREST = {rest!r}\n" + PROBE
    answer = subprocess.run([sys.executable, "-c", code], env=env, cwd=env["PYTHONPATH"], check=True,
                            capture_output=True, text=True, timeout=60 + rest)
    rss, threads, ready, loaded = ast.literal_eval(answer.stdout.strip().splitlines()[-1])
    return float(rss), int(threads), bool(ready), list(loaded)


def prometheus_client_cost() -> float:
    """RSS `import prometheus_client` adds, in MB, to an interpreter holding the daemon's other libraries
    but not aiohttp: its exposition module imports http.server, urllib.request and email, which aiohttp
    would otherwise have loaded already (1 MB in bench_idle's imports table, after aiohttp)."""
    probe = ("def rss():\n"
             "    return int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) / 1024\n"
             "import asyncio, pydantic, yaml, psutil\n"
             "before = rss()\n"
             "import prometheus_client\n"
             "print(rss() - before)\n")
    answer = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=60)
    return float(answer.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rest", type=float, default=6.0, help="seconds of collection before measuring")
    parser.add_argument("--load", default="", help="the machine's load average, for the conditions line")
    args = parser.parse_args()
    variants = {"as built": False, "without aiohttp": True}
    raw: dict[str, list[dict[str, object]]] = {}
    rss_of: dict[str, list[float]] = {}
    for label, without in variants.items():
        raw[label], rss_of[label] = [], []
        for _ in range(args.runs):
            rss, threads, ready, loaded = run_probe(ROOT, without, args.rest)
            if not ready:
                raise SystemExit(f"{label}: a source had not collected after {args.rest} s; is Redis up?")
            raw[label].append({"rss_mb": rss, "threads": threads, "loaded": loaded})
            rss_of[label].append(rss)
            print(label, f"{rss:.1f} MB", threads, "threads", "loaded:", " ".join(loaded) or "-", flush=True)

    client = sorted(prometheus_client_cost() for _ in range(args.runs))[args.runs // 2]

    def span(label: str) -> str:
        values = sorted(rss_of[label])
        low, high = f"{values[0]:.1f}", f"{values[-1]:.1f}"
        return f"{low} MB" if low == high else f"{low}-{high} MB"

    rows = [
        ["the default config's collection, no listener, aiohttp imported (as built)", span("as built")],
        ["the same without aiohttp in the process (an inert module answers its imports): "
         "the floor under any HTTP server", span("without aiohttp")],
        ["within that figure: `import prometheus_client` (its exposition imports http.server, urllib.request "
         "and email, which aiohttp loads otherwise), median", f"{client:.1f} MB"],
        ["issue 19's target for the whole daemon, server included", "40 MB"],
    ]
    load = f", load average {args.load}" if args.load else ""
    result = {
        "bench": "idle_floor",
        "command": f"python3 bench/bench_idle_floor.py --runs {args.runs} --rest {args.rest:g}",
        "measured": datetime.now(UTC).date().isoformat(),
        "conditions": f"2 vCPU VM{load}, Python {sys.version.split()[0]}; the embedded default config on "
                      f"redis://127.0.0.1:6379; {args.runs} fresh interpreter(s) per variant",
        "tables": {"floor": {"columns": ["", "RSS after collecting"], "rows": rows}},
        "raw": {**raw, "prometheus_client_mb": client},
    }
    out = ROOT / "bench" / "results" / "idle_floor.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
