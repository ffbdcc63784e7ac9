"""What `hl7lake up`'s supervisor knows, in `<run dir>/status.json` for `hl7lake status` to read.

The supervisor rewrites the file every few seconds (atomically) and deletes it when it stops; a file
whose writer is gone or that has not been rewritten lately is treated as absent.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hl7lake.supervisor import Supervisor

STATUS_FILE = "status.json"
WRITE_EVERY_SECONDS = 2.0
STALE_AFTER_SECONDS = 15.0


def status_path(run_dir: Path) -> Path:
    return run_dir / STATUS_FILE


def snapshot(supervisor: Supervisor, now: float | None = None) -> dict[str, Any]:
    services = {}
    for name, child in supervisor.children.items():
        process = child.process
        services[name] = {
            "pid": process.pid if process is not None else None,
            "up": process is not None and process.poll() is None,
            "restarts": child.restart_count,
            "lastStart": child.started_at,
        }
    return {
        "supervisorPid": os.getpid(),
        "updatedAt": time.time() if now is None else now,
        "services": services,
    }


def write_status(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(data, indent=1))
    os.replace(partial, path)  # a reader never sees half a file


class StatusWriter:
    """Writes the supervisor's snapshot at most every ``every`` seconds; ``remove`` on stop."""

    def __init__(
        self, path: Path, every: float = WRITE_EVERY_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self._every = every
        self._clock = clock
        self._last: float | None = None

    def maybe_write(self, supervisor: Supervisor) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self._every:
            return
        self._last = now
        with contextlib.suppress(OSError):  # a full disk must not stop the stack; status goes stale
            write_status(self.path, snapshot(supervisor))

    def remove(self) -> None:
        """Only a file this writer wrote: a second `hl7lake up` that fails to start leaves the first's."""
        if self._last is not None:
            self.path.unlink(missing_ok=True)


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def read_status(
    path: Path, now: float | None = None, stale_after: float = STALE_AFTER_SECONDS
) -> dict[str, Any] | None:
    """The supervisor's last snapshot, or None when no `hl7lake up` is running."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not _alive(data.get("supervisorPid")):
        return None
    age = (time.time() if now is None else now) - float(data.get("updatedAt") or 0)
    return data if age <= stale_after else None
