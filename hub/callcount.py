"""Counting this process's AWS calls by service and operation, for the pipeline benchmark.

Off unless ``HL7LAKE_CALL_COUNTS_DIR`` is set: then every boto3 call made through ``hub.aws`` is
counted (botocore's ``before-call`` event), and the counts are written as JSON to
``<dir>/<pid>.json`` every half second and at exit, for the benchmark to read.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import Field

from hub.config import EnvSettings

ENV = "HL7LAKE_CALL_COUNTS_DIR"
FLUSH_SECONDS = 0.5


class CallCountSettings(EnvSettings):
    directory: str | None = Field(default=None, validation_alias=ENV)


class CallCounter:
    def __init__(self, directory: Path) -> None:
        self._file = directory / f"{os.getpid()}.json"
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)

    def count(self, event_name: str, **kwargs: Any) -> None:
        # event_name: "before-call.<service>.<Operation>"
        service, operation = event_name.split(".", 2)[1:]
        with self._lock:
            self._counts[f"{service}.{operation}"] += 1

    def flush(self) -> None:
        with self._lock:
            counts = dict(self._counts)
        temporary = self._file.with_suffix(".tmp")
        temporary.write_text(json.dumps(counts))
        temporary.replace(self._file)

    def flush_forever(self) -> None:
        while True:
            threading.Event().wait(FLUSH_SECONDS)
            self.flush()


_counter: CallCounter | None = None


def counter_from_env() -> CallCounter | None:
    """The process's counter when counting is on (started once), else None."""
    global _counter
    directory = CallCountSettings().directory
    if not directory:
        return None
    if _counter is None:
        _counter = CallCounter(Path(directory))
        threading.Thread(target=_counter.flush_forever, name="call-counts", daemon=True).start()
        atexit.register(_counter.flush)
    return _counter
