"""The embedded AWS emulator: moto's server as a child process on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

EMULATOR_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def use_local_emulator_by_default() -> None:
    """For dev commands run beside `make up`: talk to the embedded emulator unless told otherwise."""
    if os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("HL7LAKE_EMULATOR") == "external":
        return
    host = os.environ.get("HL7LAKE_EMULATOR_HOST", "127.0.0.1")
    port = os.environ.get("HL7LAKE_EMULATOR_PORT", "4566")
    os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
    for key, value in EMULATOR_ENV.items():
        os.environ.setdefault(key, value)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (tests and benchmarks run the stack on these)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (http URL we built)
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
            last = exc
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s ({last})")


def start_emulator(host: str, port: int, log_file: Path) -> subprocess.Popen[bytes]:
    if port_in_use(host, port):
        raise RuntimeError(
            f"port {port} on {host} is taken: stop what runs there, or set HL7LAKE_EMULATOR_PORT, "
            "or set HL7LAKE_EMULATOR=external to use it as the AWS endpoint"
        )
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **EMULATOR_ENV},
            start_new_session=True,
        )
    try:
        wait_http(f"http://{host}:{port}/moto-api/", timeout=30)
    except TimeoutError:
        process.terminate()
        raise
    return process
