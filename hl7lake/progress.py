"""Progress of `hl7lake send`: one self-rewriting line with rate and ETA on a terminal, else a plain
line per file (no dependency: `rich` is a dev-only package)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from hl7lake.outcomes import FileOutcome

BAR_WIDTH = 24


def eta_text(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    def __init__(
        self, total: int, stream: TextIO, *, tty: bool, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.total = total
        self.done = 0
        self._stream = stream
        self._tty = tty
        self._clock = clock
        self._started = clock()

    def line(self) -> str:
        elapsed = max(self._clock() - self._started, 1e-6)
        rate = self.done / elapsed
        left = eta_text((self.total - self.done) / rate) if rate > 0 else "?"
        filled = BAR_WIDTH * self.done // max(self.total, 1)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        return f"[{bar}] {self.done}/{self.total} files  {rate:.1f}/s  ETA {left}"

    def advance(self, outcome: FileOutcome) -> None:
        self.done += 1
        if self._tty:
            self._stream.write("\r" + self.line())
        else:
            self._stream.write(f"{outcome.path}: {outcome.label}\n")
        self._stream.flush()

    def close(self) -> None:
        if self._tty and self.done:
            self._stream.write("\n")
            self._stream.flush()
