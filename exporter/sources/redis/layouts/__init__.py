"""The layout table: every Redis queue layout by its `layout:` name. A new library is one module
beside this file plus one entry here."""

from __future__ import annotations

from typing import Annotated

from exporter.sources.base import OwnValidators
from exporter.sources.redis.layouts.arq import ArqLayout
from exporter.sources.redis.layouts.base import Layout
from exporter.sources.redis.layouts.beequeue import BeeQueueLayout
from exporter.sources.redis.layouts.bullmq import BullMQLayout
from exporter.sources.redis.layouts.celery import CeleryLayout
from exporter.sources.redis.layouts.dramatiq import DramatiqLayout
from exporter.sources.redis.layouts.horizon import HorizonLayout
from exporter.sources.redis.layouts.huey import HueyLayout
from exporter.sources.redis.layouts.laravel import LaravelLayout
from exporter.sources.redis.layouts.list import ListLayout
from exporter.sources.redis.layouts.rq import RQLayout
from exporter.sources.redis.layouts.saq import SaqLayout
from exporter.sources.redis.layouts.sidekiq import SidekiqLayout
from exporter.sources.redis.layouts.stream import StreamLayout
from exporter.sources.redis.layouts.taskiq import TaskiqLayout
from exporter.sources.redis.layouts.zset import SortedSetLayout

AnyLayout = Annotated[
    ListLayout | SortedSetLayout | StreamLayout | LaravelLayout | HorizonLayout | SidekiqLayout | BullMQLayout
    | RQLayout | CeleryLayout | ArqLayout | DramatiqLayout | HueyLayout | SaqLayout | TaskiqLayout | BeeQueueLayout,
    OwnValidators("layout"),  # each entry validated by its layout's model alone (see OwnValidators)
]

__all__ = ["AnyLayout", "Layout"]
