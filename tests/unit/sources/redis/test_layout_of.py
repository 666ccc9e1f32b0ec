"""Which layout holds a queue, for the job listing, while a collection hands over a new map."""

from __future__ import annotations

from typing import Any

from exporter.model import QueueStats
from tests.support.redis_libs import make_source

QUEUES = [{"layout": "list", "name": "a", "key": "a"}, {"layout": "list", "name": "b", "key": "b"}]


class Racing(tuple):  # type: ignore[type-arg]
    """The old collection's records; slicing them is where the parse thread hands over the next
    collection's map (`_parse_locked` sets `_spans` and clears `_holders`), as it can between two
    bytecodes of the web loop's `layout_of`."""

    source: Any
    then: tuple[tuple[QueueStats, ...], list[tuple[int, int, int]]]

    def __getitem__(self, item: Any) -> Any:
        self.source._spans, self.source._holders = self.then, None
        return super().__getitem__(item)


async def test_a_map_handed_over_while_it_is_built_is_not_overwritten_by_the_old_one() -> None:
    source = make_source("redis://127.0.0.1:6379/0", QUEUES)
    try:
        old = Racing((QueueStats("q", 1),))
        old.source = source
        old.then = ((QueueStats("q", 1),), [(1, 0, 1)])  # the next collection found q under layout 1
        source._spans, source._holders = (old, [(0, 0, 1)]), None
        source.layout_of("", "q")  # built from the old map while the new one arrived: either answer
        layout = source.layout_of("", "q")
        assert layout is not None and layout is source.config.queues[1]
    finally:
        await source.close()
