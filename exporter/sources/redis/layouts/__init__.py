"""The layout table: every Redis queue layout by its `layout:` name, as `module:Class`. A new library
is one module beside this file plus one entry here; a layout's module is imported only when a config
names it (`OwnValidators`), so a daemon never loads the libraries it does not read."""

from __future__ import annotations

from typing import Annotated

from exporter.sources.base import OwnValidators
from exporter.sources.redis.layouts.base import Layout

LAYOUTS: dict[str, str] = {
    "list": "exporter.sources.redis.layouts.list:ListLayout",
    "zset": "exporter.sources.redis.layouts.zset:SortedSetLayout",
    "stream": "exporter.sources.redis.layouts.stream:StreamLayout",
    "laravel": "exporter.sources.redis.layouts.laravel:LaravelLayout",
    "horizon": "exporter.sources.redis.layouts.horizon:HorizonLayout",
    "sidekiq": "exporter.sources.redis.layouts.sidekiq:SidekiqLayout",
    "bullmq": "exporter.sources.redis.layouts.bullmq:BullMQLayout",
    "rq": "exporter.sources.redis.layouts.rq:RQLayout",
    "celery": "exporter.sources.redis.layouts.celery:CeleryLayout",
    "arq": "exporter.sources.redis.layouts.arq:ArqLayout",
    "dramatiq": "exporter.sources.redis.layouts.dramatiq:DramatiqLayout",
    "huey": "exporter.sources.redis.layouts.huey:HueyLayout",
    "saq": "exporter.sources.redis.layouts.saq:SaqLayout",
    "taskiq": "exporter.sources.redis.layouts.taskiq:TaskiqLayout",
    "beequeue": "exporter.sources.redis.layouts.beequeue:BeeQueueLayout",
}

# each entry validated by its layout's model alone, imported when a config names it (see OwnValidators)
AnyLayout = Annotated[Layout, OwnValidators("layout", LAYOUTS)]

__all__ = ["LAYOUTS", "AnyLayout", "Layout"]
