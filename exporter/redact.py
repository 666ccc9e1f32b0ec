"""Secrets out of everything the exporter prints: URLs lose their whole userinfo, wherever they appear.

A NATS token is the user name of its URL (`nats://TOKEN@host`), an HTTP API key often is too, and a
Redis password may hold a raw `/`; so no part of the userinfo is kept, and it is found up to the last
`@`. `redact_text` does the same to URLs inside free text (library errors, log lines).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"


def split_userinfo(url: str) -> tuple[str, str | None, str]:
    """(scheme and `//`, userinfo or None, the rest) of a URL, taking the userinfo up to the *last* `@`.

    A password with a raw `/` (`redis://:pa/ss@host`) makes urlsplit end the authority at the `/`,
    so the tail of the password came out as the path. An `@` in a path (`http://host/a@b`) has a `/`
    and no `:` before it, so it is left alone; anything else before the last `@` is userinfo."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep or "@" not in rest:
        return url.strip(), None, ""
    userinfo, _, tail = rest.rpartition("@")
    if "/" in userinfo and ":" not in userinfo:
        return url.strip(), None, ""
    return scheme + sep, userinfo, tail


def _printed_userinfo(url: str) -> tuple[str, str | None, str]:
    """split_userinfo for printing, where hiding too much is the safe side: everything before the last
    `@` of the authority part is userinfo even with a `/` and no `:` (a token `tok/en`; an `@` in a
    path loses the host before it), and a piece with no scheme (`ss@h1`, the tail of a list split at a
    comma inside a password) loses what stands before its `@`."""
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        return ("", text.rpartition("@")[0], text.rpartition("@")[2]) if "@" in text else (text, None, "")
    if "@" not in rest:
        return text, None, ""
    userinfo, _, tail = rest.rpartition("@")
    return scheme + sep, userinfo, tail


def redact_url(url: str) -> str:
    """A URL as it may appear in logs, errors, JSON and pages: the whole userinfo replaced (a NATS token
    or an API key is the user name), no query string (API keys live there too)."""
    head, userinfo, tail = _printed_userinfo(url)
    if userinfo is not None and not head:
        return f"{REDACTED}@{tail}"
    if userinfo is not None:
        url = head + tail
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "<unparsable url>"
    if userinfo is not None or parts.username is not None:
        host = f"{REDACTED}@{host}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


# a URL runs to the next blank or angle bracket: a password may hold `,` `'` `"` (hiding too much of a
# list or a repr is the safe side)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s<>]+")


def redact_url_list(urls: str) -> str:
    """A comma-separated list of URLs (NATS), split only where a scheme follows the comma, so a comma
    inside a password never cuts a URL in two."""
    return ",".join(redact_url(u) for u in re.split(r",(?=[A-Za-z][A-Za-z0-9+.-]*://)", urls))


def redact_text(text: str) -> str:
    """`text` with the userinfo of every URL in it replaced (the rest of each URL is left as it is)."""
    if "://" not in text:
        return text

    def one(match: re.Match[str]) -> str:
        head, userinfo, tail = _printed_userinfo(match.group(0))
        return match.group(0) if userinfo is None else f"{head}{REDACTED}@{tail}"

    return _URL.sub(one, text)
