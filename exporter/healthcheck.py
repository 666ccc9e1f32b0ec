"""`python -m exporter.healthcheck`: the container's HEALTHCHECK, following the configured address.

With a probe listener (JOBQUEUE_EXPORTER_HEALTH_LISTEN, the image's default) it asks that plain-HTTP
port, which answers whatever the web config demands of the main one: TLS, a client certificate
(RequireAndVerifyClientCert), or a web config given as `--web.config.file`, which this command
cannot see. Without one it finds the main port the way the daemon does (JOBQUEUE_EXPORTER_LISTEN,
else the config file's `listen`, else the default) and speaks HTTPS when
JOBQUEUE_EXPORTER_WEB_CONFIG_FILE turns TLS on. It asks `/healthz`, which basic auth leaves open.
Exit 0 when the answer is 200, else 1 with one line.
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

LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def target(environ: Mapping[str, str]) -> tuple[str, ssl.SSLContext | None]:
    """The /healthz URL of the local daemon, and the TLS context to reach it (None: plain HTTP)."""
    probes = environ.get("JOBQUEUE_EXPORTER_HEALTH_LISTEN")
    if probes:
        return _url("http", *parse_listen(probes)), None
    listen = environ.get("JOBQUEUE_EXPORTER_LISTEN")
    config_path = environ.get("JOBQUEUE_EXPORTER_CONFIG")
    if not listen and config_path:
        listen = load_config(config_path).listen
    host, port = parse_listen(listen or f"0.0.0.0:{DEFAULT_PORT}")
    context = None
    web_config = environ.get("JOBQUEUE_EXPORTER_WEB_CONFIG_FILE")
    if web_config and LiveWebConfig(web_config).context is not None:
        # loopback liveness, not identity: the certificate names the service, not 127.0.0.1
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return _url("https" if context else "http", host, port), context


def _url(scheme: str, host: str, port: int) -> str:
    host = LOOPBACK.get(host, host)
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{scheme}://{netloc}/healthz"


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
