"""Both /metrics handlers, the main listener's and `scrape_listen`'s (web/scrape.py), answer a scrape
with the same headers and bytes: they share metrics.scrape_form, and a difference would show here."""

from __future__ import annotations

import asyncio
import gzip
import urllib.request

from aiohttp.test_utils import TestClient, TestServer

from exporter.cli import build_scheduler
from exporter.web.app import build_app
from exporter.web.scrape import ScrapeListener
from tests.conftest import config_from
from tests.support.servers import free_port

# every case names Accept-Encoding: aiohttp's client sends "gzip, deflate" when none is given
ASKED = [{"Accept-Encoding": "identity"}, {"Accept-Encoding": "gzip"},
         {"Accept": "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;q=0.2", "Accept-Encoding": "gzip"},
         {"Accept": "application/openmetrics-text;version=1.0.0", "Accept-Encoding": "gzip;q=0"}]
NAMED = ("Content-Type", "Vary", "Content-Encoding")


def fetch(port: int, headers: dict[str, str]) -> tuple[dict[str, str | None], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return {h: answer.headers.get(h) for h in NAMED}, answer.read()


async def test_both_listeners_answer_a_scrape_alike() -> None:
    config = config_from("sources:\n  - name: r\n    type: redis\n    url: redis://127.0.0.1:1/0\n    timeout: 1s\n"
                         "    queues: [{layout: list, name: q, key: q}]\n")
    scheduler = build_scheduler(config)
    await scheduler.collect_once()  # one failed collection: up 0 and an error counter to serve
    listener = ScrapeListener(scheduler, "127.0.0.1", free_port())
    listener.start()
    seen = []
    try:
        async with TestClient(TestServer(build_app(config, scheduler, run_scheduler=False))) as client:
            for asked in ASKED:
                main = await client.get("/metrics", headers=asked, auto_decompress=False)
                main_named = {h: main.headers.get(h) for h in NAMED}
                main_body = await main.read()
                scrape_named, scrape_body = await asyncio.to_thread(fetch, listener.port, asked)
                assert scrape_named == main_named, asked
                seen.append((main_named["Content-Type"], main_named["Content-Encoding"]))
                assert scrape_body == main_body
                plain = gzip.decompress(main_body) if main_named["Content-Encoding"] == "gzip" else main_body
                assert b'jobqueue_source_up{source="r",backend="redis"} 0' in plain
    finally:
        listener.stop()
        await scheduler.stop()
    text, om = "text/plain; version=0.0.4; charset=utf-8", "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert seen == [(text, None), (text, "gzip"), (om, "gzip"), (om, None)]

