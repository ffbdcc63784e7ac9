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

from hl7lake.settings import RootSettings

EMULATOR_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def use_local_emulator_by_default() -> None:
    """For dev commands run beside `make up`: talk to the embedded emulator unless told otherwise."""
    settings = RootSettings()
    # AWS_ENDPOINT_URL is boto3's own variable (boto3 reads it): set means "this is AWS", keep it.
    if os.environ.get("AWS_ENDPOINT_URL") or not settings.local_emulator:
        return
    os.environ.update(settings.emulator_env())
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


def emulator_command(host: str, port: int, state_dir: Path | None = None) -> list[str]:
    command = [sys.executable, "-m", "hl7lake.emulator_server", "--host", host, "--port", str(port)]
    if state_dir is not None:
        command += ["--state-dir", str(state_dir)]
    return command


def start_emulator(
    host: str, port: int, log_file: Path, state_dir: Path | None = None
) -> subprocess.Popen[bytes]:
    """Starts our moto launcher (hl7lake.emulator_server) and waits until it answers. With a state
    dir it restores the state saved there and saves it again on `stop_emulator` (and every 30 s)."""
    if port_in_use(host, port):
        raise RuntimeError(
            f"port {port} on {host} is taken: stop what runs there, or set HL7LAKE_EMULATOR_PORT, "
            "or set HL7LAKE_EMULATOR=external to use it as the AWS endpoint"
        )
    return start_and_wait(
        emulator_command(host, port, state_dir),
        {**os.environ, **EMULATOR_ENV},
        log_file,
        health_url=f"http://{host}:{port}/moto-api/",
        what="the emulator",
        timeout=30,
    )


def start_and_wait(
    command: list[str], env: dict[str, str], log_file: Path, *, health_url: str, what: str, timeout: float
) -> subprocess.Popen[bytes]:
    """Starts a long-running emulator process (its own session; it ends with whoever started it, even
    one killed with SIGKILL: SIGTERM lets it save its state) and waits until `health_url` answers."""
    from hl7lake.supervisor import die_with_parent

    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} at start: see {log_file}")
        try:
            wait_http(health_url, timeout=1)
            return process
        except TimeoutError:
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise


def stop_emulator(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Stops the emulator gracefully: SIGTERM makes it save its state (if it has a state dir) and
    exit; only if it has not exited within `timeout` is it killed (and that state not saved)."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
