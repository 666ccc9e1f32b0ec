"""Reloading the config of a running daemon (SIGHUP, `POST /-/reload`) without a gap.

A reload reads and validates the whole config first; if anything is wrong the running config stays
in force, the reason is logged and `jobqueue_exporter_config_last_reload_successful` says 0 (the
names and meaning are Prometheus's own). Otherwise each source whose config is unchanged keeps
running as it is (its connections, its schedule, its series), changed and new sources start,
removed ones stop. Systems, shims and tokens switch at once; `listen` needs a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from exporter.config import ConfigError, ExporterConfig, default_config, load_config, parse_shard
from exporter.model import Sample, Snapshot
from exporter.preflight import preflight
from exporter.scheduler import Scheduler
from exporter.sources import SOURCE_TYPES
from exporter.sources.base import Source, SourceConfig, SourceContext
from exporter.web.auth import AUTHENTICATOR, Authenticator
from exporter.web.keys import CONFIG
from exporter.web.lifecycle import RELOAD
from exporter.web.shims.base import HEALTH
from exporter.web.webconfig import WEB_CONFIG

log = logging.getLogger("jobqueue.reload")


class SourceBuildError(Exception):
    """A source cannot be built: a secret or certificate file it names will not load."""


# What each source's `*_file` keys held when it was built: a rotated secret or certificate behind an
# unchanged path is a changed source.
_FILES: weakref.WeakKeyDictionary[Source, dict[str, str | None]] = weakref.WeakKeyDictionary()


def make_sources(config: ExporterConfig, scheduler: Callable[[], Scheduler],
                 running: Iterable[Source] = ()) -> list[Source]:
    """The sources of `config`: a running source with the very same config, shard and files is reused."""
    shard = parse_shard(config.shard)
    reuse = {s.name: s for s in running if s.context.shard == shard}
    context = SourceContext(snapshot=lambda: scheduler().snapshot, shard=shard)
    out: list[Source] = []
    source_config: SourceConfig
    for i, source_config in enumerate(config.sources):
        old = reuse.get(source_config.name)
        files = files_of(source_config)
        if old is not None and old.config == source_config and _FILES.get(old) == files:
            out.append(old)
            continue
        try:
            source = SOURCE_TYPES[source_config.type].load()(source_config, context)
        except (OSError, ValueError, ssl.SSLError) as err:
            raise SourceBuildError(f"sources[{i}] ({source_config.name}): "
                                   f"{getattr(err, 'strerror', None) or err}") from None
        _FILES[source] = files
        out.append(source)
    return out


def files_of(config: BaseModel) -> dict[str, str | None]:
    """SHA-256 of every file the config names under a `*_file` key, at any depth (None: unreadable)."""
    out: dict[str, str | None] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, BaseModel):
            for name in type(value).model_fields:
                item = getattr(value, name)
                if name.endswith("_file") and isinstance(item, str | Path):
                    try:
                        out[path + name] = hashlib.sha256(Path(item).read_bytes()).hexdigest()
                    except OSError:
                        out[path + name] = None
                else:
                    walk(item, f"{path}{name}.")
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                walk(item, f"{path}{i}.")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}{key}.")

    walk(config, "")
    return out


class Reloader:
    """Applies a new config to a running app; remembers the outcome for /metrics."""

    def __init__(self, app: web.Application, scheduler: Scheduler, config_path: str | None,
                 clock: Callable[[], float]) -> None:
        self.app = app
        self.scheduler = scheduler
        self.config_path = config_path
        self.clock = clock
        self.successful = True
        self.last_success = clock()
        self._lock = asyncio.Lock()
        scheduler.producers.append(self.samples)
        app[RELOAD] = self.reload

    def samples(self, snapshot: Snapshot) -> tuple[Sample, ...]:
        """Prometheus's own reload gauges, under the exporter's namespace."""
        return (Sample("jobqueue_exporter_config_last_reload_successful", (), int(self.successful)),
                Sample("jobqueue_exporter_config_last_reload_success_timestamp_seconds", (), self.last_success))

    async def reload(self) -> str | None:
        """Reload the config (and the web config); None when it worked, else why not."""
        async with self._lock:
            error = await self._reload()
            self.successful = error is None
            if error is None:
                self.last_success = self.clock()
                log.info("config reloaded", extra={"file": self.config_path or "<embedded default>"})
            else:
                log.error("config not reloaded; the previous one keeps running", extra={"error": error})
            self.scheduler.refresh()
            return error

    async def _reload(self) -> str | None:
        try:
            config = await asyncio.to_thread(load_config, self.config_path) if self.config_path else default_config()
        except ConfigError as err:
            return "; ".join(err.lines())
        scheduler = self.scheduler
        problems, _ = await asyncio.to_thread(preflight, config, None, False)  # certificates load, as at start
        if problems:
            return "; ".join(ConfigError(self.config_path or "<embedded default>", problems).lines())
        try:
            sources = make_sources(config, lambda: scheduler, scheduler.sources)
        except SourceBuildError as err:
            return str(err)
        live = self.app.get(WEB_CONFIG)
        if live is not None:
            error = live.reload()
            if error:
                return error
        old = self.app[CONFIG]
        if isinstance(old, ExporterConfig) and config.listen != old.listen:
            log.warning("listen changed; it applies at the next restart", extra={"listen": config.listen})
        scheduler.shard = parse_shard(config.shard)
        scheduler.revision = os.environ.get("JOBQUEUE_EXPORTER_REVISION", config.revision)
        self.app[HEALTH].systems = list(config.systems)
        # The app's mapping is frozen once it serves (to catch handlers writing shared state); a
        # reload swaps whole references, atomically between two requests on the event loop.
        self.app._state[CONFIG] = config
        self.app._state[AUTHENTICATOR] = Authenticator(config.auth.tokens)
        await scheduler.replace_sources(sources)
        return None
