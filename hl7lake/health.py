"""`hl7lake healthcheck`: what container health checks run (no curl needed in the image)."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

from hub.runtime import WorkerSettings, heartbeat_path


def check_url(url: str, timeout: float = 3.0) -> tuple[bool, str]:
    if not url.startswith(("http://", "https://")):
        return False, f"not an HTTP URL: {url}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked)
            return 200 <= response.status < 300, f"{url}: {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url}: {exc.code}"
    except OSError as exc:
        return False, f"{url}: {exc}"


def check_tcp(address: str, timeout: float = 3.0) -> tuple[bool, str]:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True, f"{address}: accepting connections"
    except (OSError, ValueError) as exc:
        return False, f"{address}: {exc}"


def check_heartbeat(worker: str, max_age: float) -> tuple[bool, str]:
    path = heartbeat_path(WorkerSettings(), worker)
    if path is None:
        return False, "HL7LAKE_HEARTBEAT_DIR is not set: the worker writes no heartbeat"
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False, f"{worker}: no heartbeat yet ({path})"
    return age <= max_age, f"{worker}: last poll {age:.1f}s ago"
