"""A certificate authority of the test's own, made with openssl: a server and a client certificate.

The server certificate names 127.0.0.1 and localhost, so clients verify it like a real one; a
second, unrelated CA lets tests prove that a wrong CA is refused.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=60)


@dataclass(frozen=True)
class Pki:
    """Paths of the files a TLS test needs."""

    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here

    def chown(self, user: str) -> None:
        """Let a server that runs as `user` (PostgreSQL) read its key."""
        for path in (self.dir, self.server_cert, self.server_key, self.ca):
            shutil.chown(path, user, user)


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=jobqueue test {name}",
             "-keyout", str(key), "-out", str(cert), cwd=directory)
    return key, cert


def _signed(directory: Path, name: str, cn: str, ca_key: Path, ca_cert: Path, ext: str) -> tuple[Path, Path]:
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.crt"
    extfile = directory / f"{name}.ext"
    extfile.write_text(ext)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", str(key), "-out", str(csr),
             cwd=directory)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
             "-days", "2", "-extfile", str(extfile), "-out", str(cert), cwd=directory)
    key.chmod(0o600)
    return cert, key


def make_pki(directory: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate, and an unrelated CA."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _ca(directory, "ca")
    server_cert, server_key = _signed(directory, "server", "localhost", ca_key, ca,
                                      "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")
    client_cert, client_key = _signed(directory, "client", "jobqueue-exporter", ca_key, ca,
                                      "extendedKeyUsage=clientAuth\n")
    _, other_ca = _ca(directory, "other")
    return Pki(directory, ca, server_cert, server_key, client_cert, client_key, other_ca)
