"""NATS credentials made the way `nsc` makes them: nkey seeds and, for operator mode, signed JWTs.

A `.creds` file holds a user JWT signed by an account, itself signed by an operator; the server
trusts the operator and preloads the account. JWTs here follow nats-io/jwt v2 (`alg: ed25519-nkey`,
claims `iss`/`sub`/`nats.type`), signed with the `nkeys` package (nats-py's own dependency).
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nkeys


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass(frozen=True)
class Key:
    """An nkey pair: the seed (secret, `S...`) and the public key (`U...`, `A...`, `O...`)."""

    seed: bytes
    public: str

    @classmethod
    def new(cls, prefix: int) -> Key:
        seed = nkeys.encode_seed(os.urandom(32), prefix)
        return cls(seed, nkeys.from_seed(bytearray(seed)).public_key.decode())

    def sign_jwt(self, subject: str, name: str, nats: dict[str, Any]) -> str:
        header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
        claims = {"jti": _b64(os.urandom(24)), "iat": int(time.time()), "iss": self.public, "name": name,
                  "sub": subject, "nats": {**nats, "version": 2}}
        body = _b64(json.dumps(claims).encode())
        signature = nkeys.from_seed(bytearray(self.seed)).sign(f"{header}.{body}".encode())
        return f"{header}.{body}.{_b64(signature)}"


def user_seed_file(directory: Path) -> tuple[Path, str]:
    """A user nkey seed file and the public key the server lists under `nkey`."""
    key = Key.new(nkeys.PREFIX_BYTE_USER)
    path = directory / "user.nk"
    path.write_bytes(key.seed + b"\n")
    path.chmod(0o600)
    return path, key.public


def operator_mode(directory: Path) -> tuple[str, Path]:
    """(server config text, creds file): an operator, one JetStream-enabled account, one user."""
    operator, account, system, user = (Key.new(p) for p in (
        nkeys.PREFIX_BYTE_OPERATOR, nkeys.PREFIX_BYTE_ACCOUNT, nkeys.PREFIX_BYTE_ACCOUNT, nkeys.PREFIX_BYTE_USER))
    operator_jwt = operator.sign_jwt(operator.public, "test-operator", {"type": "operator"})
    unlimited = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}
    account_jwt = operator.sign_jwt(account.public, "jobs", {"type": "account", "limits": {
        "subs": -1, "conn": -1, "leaf": -1, "imports": -1, "exports": -1, "data": -1, "payload": -1,
        "wildcards": True, **unlimited}})
    system_jwt = operator.sign_jwt(system.public, "SYS", {"type": "account"})  # JetStream needs one
    user_jwt = account.sign_jwt(user.public, "exporter", {"type": "user", "pub": {}, "sub": {}, "subs": -1,
                                                          "data": -1, "payload": -1})
    (directory / "operator.jwt").write_text(operator_jwt)
    creds = directory / "exporter.creds"
    creds.write_text(f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
                     f"-----BEGIN USER NKEY SEED-----\n{user.seed.decode()}\n------END USER NKEY SEED------\n")
    creds.chmod(0o600)
    config = (f'operator: "{directory / "operator.jwt"}"\nresolver: MEMORY\nsystem_account: {system.public}\n'
              f'resolver_preload: {{ {account.public}: "{account_jwt}", {system.public}: "{system_jwt}" }}\n')
    return config, creds
