"""Command line: run the daemon, check a config, or collect once and print the exposition."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import logging
import os
import signal
import sys
import threading

from aiohttp import web

from exporter import __version__
from exporter.config import ConfigError, ExporterConfig, default_config, load_config, parse_listen, parse_shard
from exporter.health.evaluation import attach as attach_health
from exporter.log import setup_logging
from exporter.metrics import TEXT
from exporter.preflight import preflight
from exporter.reload import Reloader, SourceBuildError, make_sources
from exporter.scheduler import Scheduler
from exporter.web.app import build_app, build_probe_app
from exporter.web.keys import LIMITS
from exporter.web.limits import (
    ACCEPT_ALLOWANCE,
    LISTENER_RESERVE,
    MIN_BUDGET,
    PROBE_RESERVE,
    RESERVED_FDS,
    ConnectionBudget,
    GuardedAppRunner,
    GuardedSite,
    Share,
    raise_open_files,
    reserved_files,
)
from exporter.web.scrape import ScrapeListener
from exporter.web.webconfig import LiveWebConfig, WebConfigError

log = logging.getLogger("jobqueue.main")


ENV = "JOBQUEUE_EXPORTER_"
# Seconds from SIGTERM (or SIGINT) to the end of the process, whatever the sources are stuck in
# (README, "Command line"): requests in flight get HTTP_GRACE, the scheduler about 3 * STOP_GRACE + 1;
# what still holds the process then (a thread stuck in a call that cannot be interrupted) is cut
# short by os._exit. Kubernetes waits 30 s by default before it kills.
EXIT_BOUND = 15.0
HTTP_GRACE = 2.0


def parse_args(argv: list[str] | None, environ: dict[str, str] | None = None) -> argparse.Namespace:
    """Flags; every option that takes a value also reads JOBQUEUE_EXPORTER_<NAME> (the flag wins)."""
    env = os.environ if environ is None else environ

    def default(name: str, fallback: str | None = None) -> str | None:
        return env.get(ENV + name) or fallback

    parser = argparse.ArgumentParser(prog="jobqueue-exporter", description=__doc__)
    parser.add_argument("--config", default=default("CONFIG"),
                        help="YAML config file (env JOBQUEUE_EXPORTER_CONFIG; default: embedded host + local Redis)")
    parser.add_argument("--listen", default=default("LISTEN"),
                        help="HOST:PORT to serve on, over the config's `listen` (env JOBQUEUE_EXPORTER_LISTEN)")
    parser.add_argument("--health-listen", default=default("HEALTH_LISTEN"),
                        help="HOST:PORT of a plain-HTTP listener serving only /healthz and /readyz, for probes "
                             "that cannot speak the web config's TLS or client certificates "
                             "(env JOBQUEUE_EXPORTER_HEALTH_LISTEN; default: none)")
    parser.add_argument("--web.config.file", dest="web_config_file", default=default("WEB_CONFIG_FILE"),
                        help="TLS, basic auth and headers in the Prometheus exporter-toolkit format "
                             "(env JOBQUEUE_EXPORTER_WEB_CONFIG_FILE)")
    parser.add_argument("--check-config", action="store_true", help="validate the config and exit")
    parser.add_argument("--once", action="store_true", help="collect every source once, print /metrics, exit")
    parser.add_argument("--log-level", default=default("LOG_LEVEL", "info"),
                        choices=["debug", "info", "warning", "error"], help="env JOBQUEUE_EXPORTER_LOG_LEVEL")
    parser.add_argument("--log-format", default=default("LOG_FORMAT", "text"), choices=["text", "json"],
                        help="env JOBQUEUE_EXPORTER_LOG_FORMAT")
    parser.add_argument("--version", action="version", version=f"jobqueue-exporter {__version__}")
    return parser.parse_args(argv)


class StartupError(Exception):
    """Start-up cannot go on; the message names the key and says why, in one line."""


def build_scheduler(config: ExporterConfig) -> Scheduler:
    """Instantiate every configured source behind one scheduler."""
    holder: list[Scheduler] = []
    try:
        sources = make_sources(config, lambda: holder[0])
    except SourceBuildError as err:  # a secret or certificate file that will not load
        raise StartupError(str(err)) from None
    revision = os.environ.get("JOBQUEUE_EXPORTER_REVISION", config.revision)
    scheduler = Scheduler(sources, revision=revision, shard=parse_shard(config.shard))
    holder.append(scheduler)
    attach_health(scheduler, config.systems)
    return scheduler


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["doctor"]:  # a subcommand of its own: exporter/doctor.py
        from exporter.doctor import main as doctor

        return doctor(argv[1:])
    args = parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        config = load_config(args.config) if args.config else default_config()
        if args.listen:
            parse_listen(args.listen)
    except ConfigError as err:
        for line in err.lines():
            print(f"config error: {line}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"config error: --listen: {err}", file=sys.stderr)
        return 2
    try:
        health = parse_listen(args.health_listen) if args.health_listen else None
    except ValueError as err:
        print(f"config error: --health-listen: {err}", file=sys.stderr)
        return 2
    filename = args.config or "<embedded default>"
    problems, warnings = preflight(config, args.listen, bind=args.check_config)
    for line in ConfigError(filename, warnings).lines():
        print(f"config warning: {line}", file=sys.stderr)
    if problems:
        for line in ConfigError(filename, problems).lines():
            print(f"config error: {line}", file=sys.stderr)
        return 2
    try:
        web_config = LiveWebConfig(args.web_config_file) if args.web_config_file else None
    except WebConfigError as err:
        print(f"web config error: {err}", file=sys.stderr)
        return 2 if args.check_config else 1
    if args.check_config:
        print(f"{filename}: ok ({len(config.sources)} sources)")
        return 0
    try:
        if args.once:
            return asyncio.run(_once(config))
        host, port = parse_listen(args.listen or config.listen)
        # Parsing and rendering run in worker threads; a short GIL switch interval hands the event loop
        # back within a millisecond, so scrapes and JSON answers are not held up by a large collection.
        sys.setswitchinterval(0.001)
        asyncio.run(_serve(config, host, port, args.config, web_config, health))
    except StartupError as err:  # a valid config that cannot start here (port in use, a file that won't load)
        print(f"start-up failed: {filename}: {err}", file=sys.stderr)
        return 1
    return 0


async def _once(config: ExporterConfig) -> int:
    scheduler = build_scheduler(config)
    try:
        await scheduler.collect_once()
    finally:
        await scheduler.stop()
    sys.stdout.buffer.write(scheduler.exposition.body(TEXT))
    sys.stdout.flush()
    return 0 if all(s.status.up for s in scheduler.snapshot.sources.values()) else 1


def steady_heap() -> None:
    """Keep large buffers out of the heap (glibc only; elsewhere nothing to do).

    glibc raises its mmap threshold to the size of each large block freed, so after the first cycle
    the multi-megabyte buffers of every cycle (joined lines, the exposition and its gzip) come from
    the heap, which fragments and never shrinks: 10-15 MB of RSS at 10k tenants. A fixed threshold
    keeps every block above 512 KiB in its own mapping, returned to the system when freed. Not lower:
    asyncio reads each socket into a fresh 256 KiB buffer, which at 16 KiB took a new mapping (and
    64 page faults) per request whenever the heap had no free 256 KiB, halving the scrape rate at
    10k tenants (bench_redis: 3,500-3,800 instead of 8,300 scrapes/s).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 512 * 1024)  # M_MMAP_THRESHOLD (malloc.h)
    except (OSError, AttributeError):
        return


async def _serve_probes(scheduler: Scheduler, address: tuple[str, int], share: Share) -> web.AppRunner:
    """The plain-HTTP probe listener of `--health-listen` (/healthz and /readyz only)."""
    runner = GuardedAppRunner(build_probe_app(scheduler), share=share, access_log=None, handle_signals=False,
                              shutdown_timeout=HTTP_GRACE)
    await runner.setup()
    try:
        await GuardedSite(runner, *address, reuse_address=True).start()
    except OSError as err:
        await runner.cleanup()
        reason = os.strerror(err.errno) if err.errno else str(err)
        raise StartupError(f"--health-listen: cannot listen on {address[0]}:{address[1]}: {reason}") from None
    log.info("probes listening", extra={"address": f"{address[0]}:{address[1]}"})
    return runner


async def _serve(config: ExporterConfig, host: str, port: int, config_path: str | None = None,
                 web_config: LiveWebConfig | None = None, health: tuple[str, int] | None = None) -> None:
    steady_heap()
    before, soft, hard = raise_open_files()  # before any socket: sources and the listener share the limit
    # One budget for the connections of every listener: they share the file descriptors with the sources.
    # Each listener's reserve is its own; a flood on one never takes the probes' or the scrape's part.
    listeners = 1 + (config.scrape_listen is not None) + (health is not None)
    budget = ConnectionBudget.for_open_files(listeners)
    if budget.total < MIN_BUDGET:  # a budget of 0 answered every connection, probes included, with a 503
        raise StartupError(
            f"the open-file limit is {soft} (hard {hard}); with {listeners} listener(s) it must be at least "
            f"{reserved_files(listeners) + MIN_BUDGET} ({RESERVED_FDS} for the sources and files, "
            f"{ACCEPT_ALLOWANCE} per listener for connections being accepted, {MIN_BUDGET} connections): "
            "raise it with `ulimit -n` (and `ulimit -Hn`) in the shell that starts it, LimitNOFILE= in its "
            "systemd unit, `docker run --ulimit nofile=N:N`, or the container runtime's nofile limit for a pod")
    main_share = budget.share("listen", LISTENER_RESERVE)
    scrape_share = budget.share("scrape_listen", LISTENER_RESERVE) if config.scrape_listen is not None else None
    probe_share = budget.share("health_listen", PROBE_RESERVE) if health is not None else None
    scheduler = build_scheduler(config)
    app = build_app(config, scheduler, web_config=web_config)
    reloader = Reloader(app, scheduler, config_path, scheduler.clock)
    runner = GuardedAppRunner(app, app[LIMITS], main_share, access_log=None, handle_signals=False,
                              shutdown_timeout=HTTP_GRACE)
    log.info("open files", extra={"soft_limit_at_start": before, "soft_limit": soft, "hard_limit": hard,
                                  "max_connections": runner.limits.max_connections, **budget.describe(),
                                  "reserved_sources": RESERVED_FDS, "reserved_accepts": listeners * ACCEPT_ALLOWANCE})
    await runner.setup()
    # Everything imported and built so far lives as long as the process: keep it out of the cyclic
    # GC, whose full passes over it otherwise stall the event loop for tens of milliseconds.
    gc.collect()
    gc.freeze()
    # before the port opens: a SIGTERM as soon as it answers finds the handler, not the default action
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def terminate() -> None:
        if not stop.is_set():
            stop.set()
            threading.Thread(target=_exit_after, args=(EXIT_BOUND,), name="jobqueue-exit", daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, terminate)
    # TLS runs inside each guarded connection: counted from accept, the handshake under the header timeout
    site = GuardedSite(runner, host, port, reuse_address=True,
                       ssl_context=web_config.context if web_config else None)
    try:
        await site.start()
    except OSError as err:
        await runner.cleanup()
        reason = os.strerror(err.errno) if err.errno else str(err)  # asyncio's message repeats the address
        raise StartupError(f"listen: cannot listen on {host}:{port}: {reason}") from None
    log.info("listening", extra={"address": f"{host}:{port}", "sources": len(config.sources),
                                 "tls": bool(web_config and web_config.context)})
    scrape: ScrapeListener | None = None
    if config.scrape_listen is not None:
        scrape_host, scrape_port = parse_listen(config.scrape_listen)
        scrape = ScrapeListener(scheduler, scrape_host, scrape_port, web_config, scrape_share)
        try:
            scrape.start()
        except OSError as err:
            await runner.cleanup()
            reason = os.strerror(err.errno) if err.errno else str(err)
            raise StartupError(f"scrape_listen: cannot listen on {config.scrape_listen}: {reason}") from None
        log.info("scrape listener", extra={"address": config.scrape_listen, "paths": "/metrics /healthz /readyz"})
    try:
        probes = await _serve_probes(scheduler, health, probe_share) if health and probe_share else None
    except StartupError:
        if scrape is not None:
            await asyncio.to_thread(scrape.stop)
        await runner.cleanup()
        raise
    reloads: set[asyncio.Task[str | None]] = set()

    def hangup() -> None:
        task = loop.create_task(reloader.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, hangup)
    await stop.wait()
    log.info("stopping")
    if scrape is not None:
        await asyncio.to_thread(scrape.stop)
    if probes is not None:
        await probes.cleanup()
    await runner.cleanup()


def _exit_after(seconds: float) -> None:
    """The last resort of the stop bound: end the process if the orderly stop has not in `seconds`."""
    threading.Event().wait(seconds)
    log.error("stopping took too long; exiting now", extra={"bound_seconds": seconds})
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(1)
