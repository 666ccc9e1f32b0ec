"""Host source (psutil): CPU and memory of the machine the exporter runs on."""

from __future__ import annotations

import asyncio
from typing import Literal

import psutil

from exporter.model import Reading, Sample
from exporter.sources.base import MetricDef, Source, SourceConfig, SourceContext


class SystemConfig(SourceConfig):
    """The host itself; CPU use is measured between two collections, never from a first sample."""

    type: Literal["system"]


class SystemSource(Source):
    """Reads host CPU and memory use."""

    backend = "system"
    config_model = SystemConfig
    metrics = (
        MetricDef("jobqueue_host_cpu_used_ratio", "Host CPU in use since the previous collection, 0 to 1."),
        MetricDef("jobqueue_host_memory_used_ratio", "Host memory in use, 0 to 1."),
        MetricDef("jobqueue_host_memory_available_bytes", "Host memory available to new processes."),
    )

    def __init__(self, config: SystemConfig, context: SourceContext) -> None:
        super().__init__(config, context)
        psutil.cpu_percent(interval=None)  # primes the counter: the first reading is meaningless

    async def collect(self) -> Reading:
        return await asyncio.to_thread(self._read)

    def _read(self) -> Reading:
        cpu = psutil.cpu_percent(interval=None) / 100.0
        mem = psutil.virtual_memory()
        samples = (
            Sample("jobqueue_host_cpu_used_ratio", (), cpu),
            Sample("jobqueue_host_memory_used_ratio", (), mem.percent / 100.0),
            Sample("jobqueue_host_memory_available_bytes", (), mem.available),
        )
        return Reading(samples=samples, details={"cpu_percent": cpu * 100, "memory_percent": mem.percent,
                                                 "memory_available_bytes": mem.available})
