"""The Celery app a real `celery worker` runs in the flow tests: broker and key prefix from the
environment (JQ_CELERY_URL, JQ_CELERY_PREFIX), one task that succeeds and one that raises."""

from __future__ import annotations

import os

from celery import Celery

app = Celery("jqflow", broker=os.environ.get("JQ_CELERY_URL", "redis://127.0.0.1:6379/0"), set_as_current=False)
app.conf.broker_transport_options = {"global_keyprefix": os.environ.get("JQ_CELERY_PREFIX", "")}
app.conf.broker_connection_retry_on_startup = True
app.conf.task_default_queue = "flow"


@app.task(name="jq.ok")
def ok(n: int) -> int:
    return n


@app.task(name="jq.boom")
def boom(n: int) -> None:
    raise RuntimeError(f"boom {n}")
