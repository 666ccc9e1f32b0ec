"""What start-up needs beyond a valid schema, checked before it is needed: the listen address binds and
every certificate and key file loads. `--check-config` runs all of it; start-up runs the certificates
and reports a failed bind the same way, so every start-up failure is one line naming file and key.

A port already in use is only a warning for `--check-config`: a config is validated beside the
running exporter before a reload, and that exporter holds the port. An address that can never bind
(no such interface, `256.1.1.1`) is an error.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from exporter.config import ExporterConfig, Problem, _dotted, parse_listen


def check_listen(listen: str) -> Problem | None:
    """The address must bind now, as it will at start-up; a port in use comes back as `InUse`."""
    try:
        host, port = parse_listen(listen)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except (OSError, UnicodeError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        if getattr(err, "errno", None) == errno.EADDRINUSE:
            return InUse("listen", f"cannot listen on {listen}: {reason} (is an exporter already running there?)")
        return Problem("listen", f"cannot listen on {listen}: {reason}")
    return None


class InUse(Problem):
    """The listen port is taken now: likely the running exporter whose next config is being checked."""


def check_certificates(config: BaseModel) -> list[Problem]:
    """Every `*ca_file` loads as CA certificates and every `*cert_file` with its `*key_file` as a pair."""
    problems = []
    for path, model in _models(config, ()):
        for name in type(model).model_fields:
            value = getattr(model, name)
            if value is None or not isinstance(value, str | Path):
                continue
            try:
                if name.endswith("ca_file"):
                    ssl.create_default_context().load_verify_locations(str(value))
                elif name.endswith("cert_file"):
                    key = getattr(model, name.replace("cert_file", "key_file"), None)
                    ssl.create_default_context().load_cert_chain(str(value), str(key) if key else None)
            except (OSError, ssl.SSLError, ValueError) as err:
                reason = getattr(err, "strerror", None) or getattr(err, "reason", None) or str(err)
                problems.append(Problem(_dotted((*path, name)), f"cannot load {str(value)!r}: {reason}"))
    return problems


def _models(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], BaseModel]]:
    if isinstance(value, BaseModel):
        yield path, value
        for name in type(value).model_fields:
            yield from _models(getattr(value, name), (*path, name))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _models(item, (*path, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _models(item, (*path, key))


def preflight(config: ExporterConfig, listen: str | None, bind: bool = True) -> tuple[list[Problem], list[Problem]]:
    """What start-up needs, as (problems, warnings); `bind` tries the listen address too."""
    problems = check_certificates(config)
    problem = check_listen(listen or config.listen) if bind else None
    if isinstance(problem, InUse):
        return problems, [problem]
    return problems + ([problem] if problem else []), []
