"""Where an exception was raised, for logs that must not quote its text (it may hold a message value)."""

from __future__ import annotations

import os
import traceback


def exception_location(exc: BaseException) -> str:
    """file:line of the exception's innermost frame: a location, never its text."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "unknown"
    return f"{os.path.basename(frames[-1].filename)}:{frames[-1].lineno}"
