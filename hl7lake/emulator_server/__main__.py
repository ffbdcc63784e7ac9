"""`python -m hl7lake.emulator_server --host H --port P [--state-dir DIR]`: moto's server with our
SQS and per-request patches, and optionally state kept across restarts (docs/decisions/0008)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from moto.moto_server.werkzeug_app import MotoRequestHandler

from hl7lake.emulator_server.server import serve
from hl7lake.emulator_server.server_patches import QuietRequestHandler, apply_server_patches
from hl7lake.emulator_server.snapshot import SnapshotStore
from hl7lake.emulator_server.sqs_patches import IncompatibleMotoError, apply_sqs_patches
from hl7lake.settings import EMULATOR_PORT, EMULATOR_SAVE_INTERVAL, RootSettings
from hub.config import LOCALHOST

log = logging.getLogger("hl7lake.emulator")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hl7lake.emulator_server", description=__doc__)
    parser.add_argument("--host", default=LOCALHOST)
    parser.add_argument("--port", type=int, default=EMULATOR_PORT)
    parser.add_argument("--state-dir", type=Path, help="restore moto's state from here, save it here")
    parser.add_argument(
        "--save-interval",
        type=float,
        default=RootSettings().emulator_save_interval,
        help="seconds between snapshots while requests arrive, so a crash loses at most this much "
        f"(default {EMULATOR_SAVE_INTERVAL:g}, or HL7LAKE_EMULATOR_SAVE_INTERVAL)",
    )
    parser.add_argument("--access-log", action="store_true", help="log one line per request")
    parser.add_argument(
        "--unpatched", action="store_true", help="plain moto behaviour and cost (for benchmarks)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.save_interval <= 0:
        log.error("--save-interval must be positive")
        return 2
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto.server.main does
    if not args.unpatched:
        try:
            apply_sqs_patches()
            apply_server_patches()
        except IncompatibleMotoError as exc:
            log.error("emulator not started: %s", exc)
            return 3
    store = SnapshotStore(args.state_dir) if args.state_dir else None
    if store:
        store.restore()
    quiet = not args.access_log and not args.unpatched
    handler = QuietRequestHandler if quiet else MotoRequestHandler
    serve(args.host, args.port, store, args.save_interval, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
