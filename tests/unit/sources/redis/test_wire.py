"""The RESP packer of the lean Redis connection, byte for byte (the Redis protocol spec's examples), its
replies, and its errors carrying the failure kind redis-py's did."""

from __future__ import annotations

import re

from exporter.sources.base import SourceDenied, SourceUnreachable
from exporter.sources.redis.errors import WireBusyLoading, WireConnectionError, WireNoPermission
from exporter.sources.redis.items import MAX_ITEM, TOO_BIG
from exporter.sources.redis.source import failure
from exporter.sources.redis.wire import Replies, ReplyError, as_exception, pack, pack_keys


def test_pack_is_a_resp_array_of_bulk_strings() -> None:
    assert pack("LLEN", "mylist") == b"*2\r\n$4\r\nLLEN\r\n$6\r\nmylist\r\n"
    assert pack("LINDEX", "q", 0) == b"*3\r\n$6\r\nLINDEX\r\n$1\r\nq\r\n$1\r\n0\r\n"
    assert pack("LRANGE", "q", -10, -1) == b"*4\r\n$6\r\nLRANGE\r\n$1\r\nq\r\n$3\r\n-10\r\n$2\r\n-1\r\n"


def test_pack_counts_bytes_not_characters() -> None:
    assert pack("GET", "café") == b"*2\r\n$3\r\nGET\r\n$5\r\ncaf\xc3\xa9\r\n"
    assert pack("GET", b"\x00\r\n") == b"*2\r\n$3\r\nGET\r\n$3\r\n\x00\r\n\r\n"
    assert pack("GET", "") == b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n"


def test_pack_keys_equals_one_pack_per_key() -> None:
    assert pack_keys(("LLEN",), ["a", "bb"]) == b"*2\r\n$4\r\nLLEN\r\n$1\r\na\r\n*2\r\n$4\r\nLLEN\r\n$2\r\nbb\r\n"
    assert pack_keys(("LINDEX",), ["q1", "q2"], ("-1",)) == pack("LINDEX", "q1", "-1") + pack("LINDEX", "q2", "-1")
    assert pack_keys(("LLEN",), ["ü", "x"]) == pack("LLEN", "ü") + pack("LLEN", "x")  # the non-ASCII path
    assert pack_keys(("XINFO", "GROUPS"), ["s"]) == pack("XINFO", "GROUPS", "s")
    assert pack_keys(("LLEN",), []) == b""


def _stream() -> bytes:
    big = b"y" * 1_100_000
    fake = b"$5000000\r\nnot a header"  # inside a small value: must not be taken for a header
    return (b"*3\r\n$3\r\nabc\r\n$%d\r\n%b\r\n:5\r\n" % (len(big), big)  # an LRANGE with a big middle item
            + b"$%d\r\n%b\r\n" % (len(fake), fake)
            + b"$%d\r\n%b\r\n" % (len(big), big)  # a big top-level reply (LINDEX)
            + b"+OK\r\n")


def test_replies_over_the_bound_are_skipped_not_held() -> None:
    """A bulk over the limit reads as TOO_BIG and is never buffered, however the stream is cut into
    chunks (headers split across chunks included); everything else reads as hiredis reads it."""
    data = _stream()
    expected = [["abc", TOO_BIG, 5], "$5000000\r\nnot a header", TOO_BIG, "OK"]
    headers = [m.start() for m in re.finditer(rb"\$[0-9]{7}", data)]
    cuts = [[at + d, len(data)] for at in headers for d in range(-2, 12)]  # every split of every header
    for ends in [*cuts, *(range(size, len(data) + size, size) for size in (1000, 4099, 65537, 1 << 20))]:
        replies, start = Replies(MAX_ITEM), 0
        for end in ends:
            replies.feed(data[start:end])
            start = end
            assert len(replies.held) < 24 and replies.parser.len() < 200_000  # the big items never enter
        assert replies.replies == expected, ends
    whole = Replies(None)
    whole.feed(data)
    assert whole.replies[1:3] == ["$5000000\r\nnot a header", "y" * 1_100_000]


def test_a_cut_read_stops_at_the_first_big_reply() -> None:
    """For a head read alone: reading stops at the big reply (the caller drops the connection)."""
    replies = Replies(MAX_ITEM, cut=True)
    data = _stream()
    replies.feed(data[:100])
    assert replies.replies == [] and replies.big == [0] and replies.skip == 0


def test_loading_is_a_connection_error_and_unreachable() -> None:
    err = as_exception(ReplyError("LOADING Redis is loading the dataset in memory"))
    assert isinstance(err, WireBusyLoading) and isinstance(err, WireConnectionError)
    assert isinstance(failure(err), SourceUnreachable)


def test_other_reply_errors_keep_their_kind() -> None:
    assert isinstance(as_exception(ReplyError("NOPERM no permissions")), WireNoPermission)
    assert isinstance(failure(as_exception(ReplyError("NOPERM no permissions"))), SourceDenied)
    wrongtype = failure(as_exception(ReplyError("WRONGTYPE Operation against a key")))
    assert type(wrongtype).__name__ == "SourceError"


def test_binary_replies_keep_bytes_that_are_not_utf8() -> None:
    """SCAN reads keys undecoded, so a key that is not UTF-8 is told apart from one holding U+FFFD."""
    scan = b"*2\r\n$1\r\n0\r\n*2\r\n$3\r\nt_\xff\r\n$5\r\nt_\xef\xbf\xbd\r\n"
    binary, text = Replies(MAX_ITEM, encoding=None), Replies(MAX_ITEM)
    binary.feed(scan)
    text.feed(scan)
    assert binary.replies == [[b"0", [b"t_\xff", "t_\ufffd".encode()]]]
    assert text.replies == [["0", ["t_\ufffd", "t_\ufffd"]]]  # the two keys would be one tenant
