"""Logging set-up: fixed event strings, details in fields, text or JSON lines."""

from __future__ import annotations

import json
import logging
import sys
import time

from exporter.redact import redact_text

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class TextFormatter(logging.Formatter):
    """`time level logger event key=value ...`; any URL in it without its userinfo (a library's message
    or exception may quote the URL it was given)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{stamp}Z {record.levelname.lower()} {record.name} {record.getMessage()}"
        if extra:
            line += " " + extra
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact_text(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; URLs without their userinfo, as in TextFormatter."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return redact_text(json.dumps(doc, default=str))


class OneLineLibraries(logging.Filter):
    """A library's log record keeps its message and gains `error=Type: message`, but loses its traceback:
    an outage must read as one line, not as asyncpg's 40-line retry traceback every second."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not record.name.startswith("jobqueue"):
            exc = record.exc_info[1]
            if exc is not None:
                record.error = f"{type(exc).__name__}: {str(exc)[:200]}"
            record.exc_info, record.exc_text = None, None
        return True


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Configure the root logger once, to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(OneLineLibraries())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
