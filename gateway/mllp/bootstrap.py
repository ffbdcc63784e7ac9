"""Wiring for the MLLP listener: the same ingest service as the HTTP front door, from settings."""

from __future__ import annotations

import asyncio
import logging
import signal

from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from gateway.bootstrap import build_ingest
from gateway.config import GatewaySettings
from gateway.mllp.config import MllpSettings
from gateway.mllp.server import MllpServer
from hub import metrics, telemetry

log = logging.getLogger(__name__)


@retry(
    retry=retry_if_exception_type((LookupError, OSError)),
    stop=stop_after_delay(30),
    wait=wait_fixed(1),
    reraise=True,
)
def build_server(settings: MllpSettings | None = None, gateway: GatewaySettings | None = None) -> MllpServer:
    """The listener with real adapters; the size bound is the HTTP one (HL7LAKE_MAX_BODY_BYTES)."""
    gateway = gateway or GatewaySettings()
    return MllpServer.from_settings(
        build_ingest(gateway, door="mllp"), settings or MllpSettings(), max_bytes=gateway.max_body_bytes
    )


async def serve(server: MllpServer) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully (messages in flight get their ACK)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        await stop.wait()
        log.info("mllp stopping")
    finally:
        await server.stop()


def run(settings: MllpSettings | None = None) -> None:
    telemetry.configure_tracing("mllp")
    server = build_server(settings)
    metrics.serve()
    asyncio.run(serve(server))
    close = getattr(server.ingest, "close", None)  # dedup completions still waiting for their batch
    if close is not None:
        close()
