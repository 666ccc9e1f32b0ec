"""The lean connection's errors carry the failure kind redis-py's did: a reply error or a socket error
becomes the exception the source maps to denied, unreachable or error."""

from __future__ import annotations

from exporter.sources.base import SourceDenied, SourceUnreachable
from exporter.sources.redis.errors import WireBusyLoading, WireConnectionError, WireNoPermission
from exporter.sources.redis.source import failure
from exporter.sources.redis.wire import ReplyError, as_exception


def test_loading_is_a_connection_error_and_unreachable() -> None:
    err = as_exception(ReplyError("LOADING Redis is loading the dataset in memory"))
    assert isinstance(err, WireBusyLoading) and isinstance(err, WireConnectionError)
    assert isinstance(failure(err), SourceUnreachable)


def test_other_reply_errors_keep_their_kind() -> None:
    assert isinstance(as_exception(ReplyError("NOPERM no permissions")), WireNoPermission)
    assert isinstance(failure(as_exception(ReplyError("NOPERM no permissions"))), SourceDenied)
    wrongtype = failure(as_exception(ReplyError("WRONGTYPE Operation against a key")))
    assert type(wrongtype).__name__ == "SourceError"
