"""Runs moto's WSGI app (as `python -m moto.server` does) and, with a state dir, snapshots it:
periodically while something changed, and once more on SIGTERM/SIGINT before exiting."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from hl7lake.emulator_server.snapshot import SnapshotStore

log = logging.getLogger("hl7lake.emulator")

# How long a graceful stop waits for requests still running (a long poll lasts up to 20 s).
IN_FLIGHT_GRACE_SECONDS = 5.0


class RequestTracker:
    """WSGI middleware that counts requests: "has anything happened since the last snapshot?" and
    "is any request still running?"."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.served = 0
        self.in_flight = 0
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with self.lock:
            self.in_flight += 1
        try:
            return self.app(environ, start_response)
        finally:
            # counted once done, so a snapshot that started after this count includes its effect
            with self.lock:
                self.in_flight -= 1
                self.served += 1

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.in_flight


def stop_on_signals(stop: threading.Event) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("emulator got %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def save_quietly(store: SnapshotStore) -> None:
    try:
        store.save()
    except Exception:
        log.exception("EMULATOR STATE NOT SAVED to %s", store.path)


def serve(
    host: str,
    port: int,
    store: SnapshotStore | None,
    save_interval: float,
    request_handler: type[MotoRequestHandler] = MotoRequestHandler,
) -> None:
    dispatcher = DomainDispatcherApplication(create_backend_app)
    dispatcher.debug = True  # type: ignore[attr-defined] # as moto.server.main sets it
    tracker = RequestTracker(dispatcher)
    server = make_server(host, port, tracker, threaded=True, request_handler=request_handler)
    stop = threading.Event()
    stop_on_signals(stop)
    serving = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
    serving.start()
    log.info("emulator listening on http://%s:%d", host, port)

    saved_at_count = tracker.served
    while not stop.wait(timeout=save_interval if store else None):
        if store and tracker.served != saved_at_count:
            saved_at_count = tracker.served
            save_quietly(store)

    server.shutdown()
    if store:
        if not tracker.wait_idle(IN_FLIGHT_GRACE_SECONDS):
            log.warning("emulator: %d request(s) still running; saving state anyway", tracker.in_flight)
        save_quietly(store)
    server.server_close()
    log.info("emulator stopped")
