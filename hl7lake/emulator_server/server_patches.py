"""Cheap per-request overheads of moto's server (measured in /work/shared/measurements/embedded-emulator.md).

- moto's dispatcher calls `moto.backends.list_of_moto_modules()` on every request, which lists and
  stats moto's package directory (~10% of a trivial request). The directory does not change while
  the server runs, so we compute it once.
- The per-request access log line is dropped unless asked for (`--access-log`), by a request
  handler subclass rather than a patch.
"""

from __future__ import annotations

import functools

import moto.backends
from moto.moto_server.werkzeug_app import MotoRequestHandler

from hl7lake.emulator_server.sqs_patches import IncompatibleMotoError


def apply_server_patches() -> None:
    original = getattr(moto.backends, "list_of_moto_modules", None)
    if original is None:
        raise IncompatibleMotoError("moto.backends.list_of_moto_modules is gone: re-check server_patches.py")
    if isinstance(original, functools._lru_cache_wrapper):
        return
    modules = tuple(original())
    moto.backends.list_of_moto_modules = functools.lru_cache(maxsize=1)(lambda: modules)


class QuietRequestHandler(MotoRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass
