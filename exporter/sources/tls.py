"""TLS to a backend: one config block (`tls:`) shared by the Redis, PostgreSQL and NATS sources.

A private CA (`ca_file`), a client certificate (`cert_file` + `key_file`) and an explicit
`insecure: true` (encrypt, but check neither the certificate nor the host name) are all a source
needs; each source turns the block into the `ssl.SSLContext` its client library takes, so every
read path of a source (the lean Redis connection and redis-py alike) verifies the same way.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TypeVar

from pydantic import model_validator

from exporter.sources.base import Model

T = TypeVar("T")


class TlsConfig(Model):
    """How to check the server and who the exporter is: files are checked when the config loads."""

    ca_file: Path | None = None  # CA bundle that signed the server certificate (default: the system's)
    cert_file: Path | None = None  # client certificate, for servers that require one
    key_file: Path | None = None
    insecure: bool = False  # no certificate and no host name check: encrypted, but not authenticated

    @model_validator(mode="after")
    def _files(self) -> TlsConfig:
        for key in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, key)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{key} {str(path)!r} is not a readable file")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give cert_file and key_file together (the client certificate and its key)")
        if self.insecure and self.ca_file is not None:
            raise ValueError("insecure: true checks no certificate, so ca_file would be ignored: give one of them")
        return self

    def context(self) -> ssl.SSLContext:
        """A client context: TLS 1.2 or later, the given CA (or the system's), the client certificate."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file is not None and self.key_file is not None:
            ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx


def merge(name: str, url_value: T | None, config_value: T | None) -> T | None:
    """One TLS setting given in the URL, in the config, or both (then they must agree)."""
    if url_value is not None and config_value is not None and url_value != config_value:
        raise ValueError(f"tls.{name} and the url's parameter for it disagree: give it in one place")
    return config_value if config_value is not None else url_value
