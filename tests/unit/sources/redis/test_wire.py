"""The RESP packer of the lean Redis connection, byte for byte (the Redis protocol spec's examples)."""

from __future__ import annotations

from exporter.sources.redis.wire import pack, pack_keys


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
