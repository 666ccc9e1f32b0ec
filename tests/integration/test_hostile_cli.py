"""Start-up checked before it is needed (issue 15, item 3): `--check-config` binds the listen address and
loads certificates; a start-up that fails anyway says so in one line naming file and key, no traceback."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from tests.integration.test_cli import run
from tests.support.servers import free_port

SYSTEM = "sources:\n  - name: host\n    type: system\n"


def test_check_config_binds_the_listen_address(write_config: Callable[[str], Path]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = write_config(f"listen: 127.0.0.1:{port}\n{SYSTEM}")
        result = run("--config", str(path), "--check-config")
    # a port in use is the running exporter whose next config is checked before a reload: warn, pass
    assert result.returncode == 0
    assert result.stderr == (f"config warning: {path}: listen: cannot listen on 127.0.0.1:{port}: Address already "
                             "in use (is an exporter already running there?)\n")
    assert result.stdout == f"{path}: ok (1 sources)\n"
    path = write_config(f"listen: 256.1.1.1:{free_port()}\n{SYSTEM}")
    result = run("--config", str(path), "--check-config")
    assert result.returncode == 2
    assert result.stderr.startswith(f"config error: {path}: listen: cannot listen on 256.1.1.1:")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    path = write_config(f"listen: 127.0.0.1:{free_port()}\n{SYSTEM}")
    assert run("--config", str(path), "--check-config").returncode == 0


def test_check_config_loads_certificates(write_config: Callable[[str], Path], tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    path = write_config(f"""listen: 127.0.0.1:{free_port()}
sources:
  - name: api
    type: http
    url: https://127.0.0.1:1/
    ca_file: {bad}
""")
    result = run("--config", str(path), "--check-config")
    assert result.returncode == 2
    assert result.stderr.startswith(f"config error: {path}: sources[0].ca_file: cannot load '{bad}': ")
    assert len(result.stderr.splitlines()) == 1


def test_a_port_in_use_at_start_is_one_line(write_config: Callable[[str], Path]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = write_config(SYSTEM)
        result = run("--config", str(path), "--listen", f"127.0.0.1:{port}", "--log-level", "error")
    assert result.returncode == 1  # a valid config that cannot start here: exit 1 (issue 13); 2 is a bad config
    assert result.stderr == (f"start-up failed: {path}: listen: cannot listen on 127.0.0.1:{port}: "
                             "Address already in use\n")


def test_invalid_utf8_and_bombs_on_the_command_line(write_config: Callable[[str], Path], tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(SYSTEM.encode() + b"revision: caf\xe9\n")
    result = run("--config", str(path), "--check-config")
    assert (result.returncode, result.stderr) == (
        2, f"config error: {path}:4: (top level): not UTF-8 text (byte 0xe9)\n")
    path = write_config("a: " + "[" * 100_000 + "\n")
    result = run("--config", str(path), "--check-config")
    assert (result.returncode, result.stderr) == (
        2, f"config error: {path}: (top level): nested deeper than 32 levels\n")
