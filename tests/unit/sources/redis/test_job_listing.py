"""Job listing parsers of the newer layouts, on literal inputs (the integration tests run the real libraries)."""

from __future__ import annotations

import pickle

from exporter.sources.redis.layouts.dramatiq import live_ids
from exporter.sources.redis.layouts.huey import peek_message


class Evil:
    """Unpickling this would run `os.system`; reading its opcodes must not."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("touch /tmp/jq-never",))


def test_huey_message_is_peeked_never_unpickled() -> None:
    from huey.registry import Message

    message = Message("id-1", "app.tasks.mail", None, 0, 0, None, (1,), {}, None, None, None, None)
    for protocol in (2, 4, 5):  # GLOBAL (protocols 2-3), STACK_GLOBAL (4+); huey/serializer.py: HIGHEST_PROTOCOL
        assert peek_message(pickle.dumps(message, protocol)) == ("id-1", "app.tasks.mail")
    assert peek_message(pickle.dumps(Evil())) == (None, None)  # not a huey Message: nothing read, nothing run
    assert peek_message(b"not a pickle") == (None, None)
    assert peek_message(pickle.dumps(message)[:30]) == (None, None)  # cut short


def test_dramatiq_live_broker_ids() -> None:
    reply = ["new", "1700000000000", "old", "1699999930000"]
    assert live_ids(reply, 1_699_999_940_000) == ["new"]
    assert live_ids("!WRONGTYPE", 0) == []


def test_arq_job_fields_from_the_pickle_not_its_arguments() -> None:
    """arq/jobs.py serialize_job: {t, f, a, k, et}; keys named alike inside args/kwargs (memoized by
    the pickler, so read back through BINGET) never shadow the job's own."""
    from arq.jobs import serialize_job

    from exporter.sources.redis.layouts.arq import ArqLayout

    body = serialize_job("send", ({"et": 5, "t": 9, "f": "x"},), {"et": 7}, 2, 1_700_000_000_123)
    layout = ArqLayout(layout="arq")
    job = layout.job("j1", {"body": body.decode("latin-1"), "score": "1700000600000.0"}, "arq:queue", "waiting")
    assert (job.id, job.payload, job.attempts, job.created_at, job.updated_at) == (
        "j1", {"function": "send"}, 2, 1_700_000_000.123, 1_700_000_600.0)
    evil = layout.job("j2", {"body": pickle.dumps(Evil()).decode("latin-1")}, "arq:queue", "waiting")
    assert (evil.payload, evil.attempts, evil.created_at) == (None, None, None)  # nothing run, nothing read


def test_job_listing_acl_names_every_read_of_the_newer_layouts() -> None:
    """doctor checks these with ACL DRYRUN: each command the listing sends (jobs.read_page) is named."""
    from pydantic import TypeAdapter

    from exporter.sources.redis.layouts import AnyLayout

    def acl(config: dict[str, object]) -> set[str]:
        return {command[0] for command in TypeAdapter(AnyLayout).validate_python(config).job_acl("")}

    assert acl({"layout": "dramatiq"}) == {"LLEN", "LRANGE", "HGET", "ZCARD", "ZREVRANGE"}
    assert acl({"layout": "saq"}) == {"LLEN", "LRANGE", "GET"}
    assert acl({"layout": "beequeue", "queues": ["q"]}) == {"LLEN", "LRANGE", "HGET"}
    assert acl({"layout": "arq"}) == {"ZCARD", "ZRANGE", "GET"}
    assert acl({"layout": "huey"}) == {"TYPE", "LLEN", "LRANGE", "ZCARD", "ZRANGE"}
    assert acl({"layout": "taskiq"}) == {"LLEN", "LRANGE"}
    assert acl({"layout": "taskiq", "broker": "stream"}) == {"TYPE", "XINFO", "XLEN", "XRANGE"}
