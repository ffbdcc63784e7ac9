"""Waiting for the stack's services to answer, failing at once when one of its processes exits."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hl7lake.ports import StackFailure
from hl7lake.supervisor import Supervisor


@dataclass(frozen=True)
class Probe:
    what: str
    ready: Callable[[], bool]


def http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (http URL we built)
            return int(response.status) < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def tcp_accepts(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def wait_until_ready(
    supervisor: Supervisor, probes: Sequence[Probe], timeout: float, stop: threading.Event
) -> bool:
    """True when every probe passes; False when asked to stop first. StackFailure as soon as a child
    exits (its code and last lines), or when the timeout passes (what is still not ready)."""
    deadline = time.monotonic() + timeout
    pending = list(probes)
    while True:
        supervisor.raise_if_any_exited()
        pending = [probe for probe in pending if not probe.ready()]
        if not pending:
            return True
        if time.monotonic() > deadline:
            names = ", ".join(probe.what for probe in pending)
            raise StackFailure(f"not ready within {timeout:.0f}s: {names}; logs in {supervisor.log_dir}")
        if stop.wait(0.2):
            return False
