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


def redact_url(url: str) -> str:
    """A URL as it may appear in logs, errors, JSON and pages: the whole userinfo replaced (a NATS token
    or an API key is the user name), no query string (API keys live there too)."""
    head, userinfo, tail = split_userinfo(url)
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


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>,]+")


def redact_text(text: str) -> str:
    """`text` with the userinfo of every URL in it replaced (the rest of each URL is left as it is)."""
    if "://" not in text:
        return text

    def one(match: re.Match[str]) -> str:
        head, userinfo, tail = split_userinfo(match.group(0))
        return match.group(0) if userinfo is None else f"{head}{REDACTED}@{tail}"

    return _URL.sub(one, text)
