"""`python -m exporter.healthcheck`: the container's HEALTHCHECK, following the configured address.

It finds the port the way the daemon does (JOBQUEUE_EXPORTER_LISTEN, else the config file's
`listen`, else the default) and speaks HTTPS when the web config turns TLS on; it asks `/healthz`,
which is open even when basic auth is on. Exit 0 when the answer is 200, else 1 with one line.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

from exporter.config import DEFAULT_PORT, ConfigError, load_config, parse_listen
from exporter.web.webconfig import LiveWebConfig, WebConfigError


def target(environ: Mapping[str, str]) -> tuple[str, ssl.SSLContext | None]:
    """The /healthz URL of the local daemon, and the TLS context to reach it (None: plain HTTP)."""
    listen = environ.get("JOBQUEUE_EXPORTER_LISTEN")
    config_path = environ.get("JOBQUEUE_EXPORTER_CONFIG")
    if not listen and config_path:
        listen = load_config(config_path).listen
    host, port = parse_listen(listen or f"0.0.0.0:{DEFAULT_PORT}")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    context = None
    web_config = environ.get("JOBQUEUE_EXPORTER_WEB_CONFIG_FILE")
    if web_config and LiveWebConfig(web_config).context is not None:
        # loopback liveness, not identity: the certificate names the service, not 127.0.0.1
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    scheme = "https" if context else "http"
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{scheme}://{netloc}/healthz", context


def main() -> int:
    try:
        url, context = target(os.environ)
    except (ConfigError, WebConfigError, ValueError) as err:
        print(f"healthcheck: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:
            ok = resp.status == 200
    except (OSError, urllib.error.URLError) as err:
        print(f"healthcheck: {url}: {getattr(err, 'reason', err)}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
