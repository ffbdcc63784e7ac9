"""Starting `hl7lake up` as a user would, on free ports, for the end-to-end tests."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hub.metrics import METRICS_PORTS
from tests.conftest import external_env, free_port


def free_port_run(count: int) -> int:
    """The first of `count` consecutive free ports on 127.0.0.1, below Linux's ephemeral range
    (32768–60999), so the OS does not hand them to an outgoing connection before the stack binds them."""
    for _ in range(200):
        base = random.randrange(20000, 32768 - count)
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports")


@dataclass
class RunningStack:
    url: str
    mllp_port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    metrics_base_port: int = 0

    def metrics_url(self, service: str) -> str:
        """Where `hl7lake up` serves a worker's or the MLLP listener's /metrics."""
        offset = METRICS_PORTS[service] - METRICS_PORTS["mllp"]
        return f"http://127.0.0.1:{self.metrics_base_port + offset}/metrics"

    def token(self, user: str) -> dict[str, str]:
        """Authorization header from `hl7lake token`, run with only what a user's second terminal has."""
        out = subprocess.run(
            [sys.executable, "-m", "hl7lake", "token", "--user", user],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return {"Authorization": f"Bearer {out.stdout.strip()}"}


def _ready(url: str, mllp_port: int) -> bool:
    try:
        if httpx.get(f"{url}/readyz", timeout=2).status_code != 200:
            return False
    except httpx.HTTPError:
        return False
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", mllp_port)) == 0


def stop(process: subprocess.Popen[Any], timeout: float = 30) -> None:
    """SIGTERM, as Ctrl-C would; SIGKILL only when it does not stop in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_stack(
    run_dir: Path, timeout: float = 120, prefix: str | None = None, **settings: str
) -> Iterator[RunningStack]:
    emulator_port, gateway_port, mllp_port = free_port(), free_port(), free_port()
    metrics_base_port = free_port_run(len(METRICS_PORTS))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HL7LAKE_"))}
    env.update(
        HL7LAKE_EMULATOR_PORT=str(emulator_port),
        HL7LAKE_PORT=str(gateway_port),
        HL7LAKE_MLLP_PORT=str(mllp_port),
        HL7LAKE_RUN_DIR=str(run_dir),
        # Never the developer's own lake (.run/state): each stack keeps its state beside its logs.
        HL7LAKE_STATE_DIR=str(run_dir / "state"),
        HL7LAKE_WAIT_SECONDS="1",
        HL7LAKE_METRICS_BASE_PORT=str(metrics_base_port),
    )
    env.update(external_env(), HL7LAKE_PREFIX=prefix or f"e2e{uuid.uuid4().hex[:8]}", **settings)
    banner = run_dir / "up.stdout"
    with banner.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "hl7lake", "up"], env=env, stdout=out)
    url = f"http://127.0.0.1:{gateway_port}"
    try:
        deadline = time.monotonic() + timeout
        # Up when `hl7lake up` says so (its start-up checks are over), and the endpoints answer.
        while "hl7lake is up" not in banner.read_text(errors="replace") or not _ready(url, mllp_port):
            if process.poll() is not None:
                raise AssertionError(f"hl7lake up exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise AssertionError("stack (gateway and MLLP listener) not ready in time")
            time.sleep(0.2)
        yield RunningStack(url, mllp_port, env, process, metrics_base_port)
    finally:
        stop(process)
