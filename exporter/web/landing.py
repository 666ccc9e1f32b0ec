"""The landing page at `/`: what this exporter watches, how each source is doing, and where to look.

Written for the person who opens the port in a browser: every source with its state, last
success and last error; each system's health; and only the endpoints this config enables, each
said in plain words. One self-contained page: inline styles, no scripts, no external assets.
"""

from __future__ import annotations

import html
import time

from aiohttp import web

from exporter import __version__
from exporter.model import SourceState
from exporter.web.endpoints import OWN
from exporter.web.keys import CONFIG, SCHEDULER
from exporter.web.shims import SHIMS
from exporter.web.shims.base import HEALTH

routes = web.RouteTableDef()

KINDS = {"redis": "Redis", "postgres": "PostgreSQL", "nats": "NATS JetStream", "system": "This host",
         "http": "HTTP service", "files": "Files"}

STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
main{max-width:60rem;margin:0 auto;padding:1.5rem}
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.8rem 0 .6rem}
p.lead{color:#57606a;margin:.2rem 0 1rem}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de;border-radius:6px}
th,td{text-align:left;padding:.45rem .7rem;border-bottom:1px solid #eaeef2;vertical-align:top}
th{background:#f6f8fa;font-weight:600;white-space:nowrap}
.state{display:inline-block;padding:0 .5rem;border-radius:1rem;font-weight:600;font-size:.85rem}
.up,.ok{background:#dafbe1;color:#116329}.down,.unhealthy{background:#ffebe9;color:#a40e26}
.waiting,.degraded{background:#fff8c5;color:#7d4e00}
.error{color:#a40e26;font-size:.9rem}
ul.endpoints{list-style:none;padding:0;margin:0;background:#fff;border:1px solid #d0d7de;border-radius:6px}
ul.endpoints li{padding:.45rem .7rem;border-bottom:1px solid #eaeef2}
code,a{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9rem}
a{color:#0969da}footer{color:#57606a;font-size:.85rem;margin-top:2rem}
"""


def state_of(source: SourceState) -> str:
    """`up`, `down`, or `waiting` before the first collection."""
    if source.status.collections == 0:
        return "waiting"
    return "up" if source.status.up else "down"


def ago(when: float | None, now: float) -> str:
    """A timestamp in words (`12 s ago`), with the UTC time in a tooltip."""
    if when is None:
        return "never"
    seconds = max(0, int(now - when))
    text = f"{seconds} s ago" if seconds < 120 else (f"{seconds // 60} min ago" if seconds < 7200
                                                      else f"{seconds // 3600} h ago")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))
    return f'<time datetime="{stamp}" title="{stamp}">{text}</time>'


def enabled_endpoints(app: web.Application) -> list[tuple[str, str]]:
    """The exporter's own endpoints, then those of every enabled health API, in config order."""
    out = list(OWN)
    table = {entry.key: entry for entry in SHIMS}
    for key, shim in app[CONFIG].shims.bound():
        if shim.enabled and key in table:
            out.extend(table[key].load().endpoints)  # imported already: the config named it
    return out


def _source_rows(app: web.Application, now: float) -> str:
    config = app[CONFIG]
    rows = []
    for name, state in app[SCHEDULER].snapshot.sources.items():
        source = config.source(name)
        kind = KINDS.get(source.type if source else state.status.backend, state.status.backend)
        queues = len(state.reading.queues) if state.reading else None
        reads = f"{queues} queue{'s' if queues != 1 else ''}" if queues else ""
        word = state_of(state)
        error = ""
        if not state.status.up and state.status.error:
            error = f'<div class="error">{html.escape(state.status.error)}</div>'
        rows.append(
            f'<tr data-source="{html.escape(name)}"><td><strong>{html.escape(name)}</strong></td>'
            f"<td>{html.escape(kind)}</td><td>{reads}</td>"
            f'<td><span class="state {word}">{word}</span>{error}</td>'
            f"<td>{ago(state.status.last_success, now)}</td></tr>")
    return "".join(rows)


def _system_rows(app: web.Application) -> str:
    monitor = app.get(HEALTH)
    if monitor is None:
        return ""
    rows = []
    for name, verdict in sorted(monitor.current.items()):
        issues = ", ".join(html.escape(i.id) for i in verdict.issues) or "none"
        rows.append(f'<tr data-system="{html.escape(name)}"><td><strong>{html.escape(name)}</strong></td>'
                    f'<td><span class="state {verdict.status}">{verdict.status}</span></td><td>{issues}</td></tr>')
    return "".join(rows)


def _link(path: str) -> str:
    if "{" in path:
        return f"<code>{html.escape(path)}</code>"
    return f'<a href="{html.escape(path)}">{html.escape(path)}</a>'


def render(app: web.Application, now: float) -> str:
    """The whole page."""
    endpoints = "".join(f"<li>{_link(p)} — {html.escape(t)}</li>" for p, t in enabled_endpoints(app))
    systems = _system_rows(app)
    systems_html = (
        "<h2>Health</h2><table id=systems><tr><th>system</th><th>status</th><th>active issues</th></tr>"
        f"{systems}</table>" if systems else "")
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>jobqueue-exporter</title><style>{STYLE}</style></head><body><main>"
        f"<h1>jobqueue-exporter</h1><p class=lead>Watches job queues and the services around them, "
        "and serves what it sees to Prometheus and to health checks.</p>"
        "<h2>What it watches</h2><table id=sources><tr><th>source</th><th>kind</th><th>reads</th>"
        f"<th>state</th><th>last success</th></tr>{_source_rows(app, now)}</table>"
        f"{systems_html}"
        f"<h2>Endpoints</h2><ul class=endpoints id=endpoints>{endpoints}</ul>"
        f"<footer>jobqueue-exporter {html.escape(__version__)}</footer></main></body></html>"
    )


@routes.get("/")
async def landing(request: web.Request) -> web.Response:
    """Landing page: what is watched, each source's state, the enabled endpoints."""
    return web.Response(text=render(request.app, time.time()), content_type="text/html")
