"""Reads the active alerts of an Alertmanager (API v2), for the platform shim's alert listing.

A reader like a source's, kept below the web layer: the web asks for alerts and gets the raw list or
`AlertsUnavailable`, and never holds an HTTP client to another system itself.
"""

from __future__ import annotations

from typing import Any

import aiohttp


class AlertsUnavailable(Exception):
    """Alertmanager did not answer, answered an error, or answered something that is not JSON."""


async def read_alerts(base_url: str, seconds: float) -> Any:
    """GET <base_url>/api/v2/alerts within `seconds`: the decoded JSON, whatever its shape."""
    url = base_url.rstrip("/") + "/api/v2/alerts"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session, \
                session.get(url) as answer:
            answer.raise_for_status()
            return await answer.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as err:
        raise AlertsUnavailable(type(err).__name__) from err
