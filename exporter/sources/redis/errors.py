"""The lean connection's errors, and which errors a Redis read may raise, without importing redis-py.

`wire.py` raised redis-py's exception classes, and so imported redis-py (and its 60 modules, ~6 MB
more once exporter.cli is loaded) into every daemon with a Redis source; these classes take their
place. redis-py's own errors (Sentinel, Cluster, Celery events) are matched only once redis-py is
imported: before that none can be raised.
"""

from __future__ import annotations

import sys


class WireError(Exception):
    """Base of the errors of the lean connection (wire.py, cluster.py)."""


class WireConnectionError(WireError, ConnectionError):
    """The server could not be reached, or closed the connection (also an OSError, as sockets' are)."""


class WireBusyLoading(WireConnectionError):
    """The server answered -LOADING (it is reading its dataset after a restart): not reachable yet, as
    redis-py's BusyLoadingError (a ConnectionError) and the Sentinel and Cluster paths report it."""


class WireAuthError(WireError):
    """The server refused the exporter's credentials."""


class WireResponseError(WireError):
    """An error reply (WRONGTYPE, an unknown command, ...)."""


class WireNoPermission(WireResponseError):
    """An ACL refused a command (NOPERM)."""


def failures() -> tuple[type[BaseException], ...]:
    """What a Redis read may raise: the wire's errors and OSError, plus redis-py's once it is loaded."""
    found: tuple[type[BaseException], ...] = (WireError, OSError)
    redis = sys.modules.get("redis.exceptions")
    if redis is not None:
        found += (redis.RedisError, redis.RedisClusterException)
    return found
