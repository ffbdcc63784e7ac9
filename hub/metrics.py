"""The Prometheus metrics every service exports, defined once (names are a contract: the compose
profile's Prometheus and Grafana dashboard query them), and the small server for processes that
have no HTTP app of their own (workers, the MLLP listener).

Labels carry ids of kinds only (event, outcome, reason code, message type, worker name), never
message content.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import Counter, Histogram, start_http_server
from pydantic_settings import SettingsConfigDict

from hub.config import LOCALHOST, EnvSettings

log = logging.getLogger(__name__)

# Default metrics ports of the processes without an HTTP app (the gateway serves /metrics itself).
METRICS_PORTS = {
    "mllp": 9102,
    "er7-staging": 9103,
    "lake-writer": 9104,
    "batch-splitter": 9105,
    "fhir-r4": 9106,
}

INGESTED = Counter(
    "hl7lake_ingest_messages_total",
    "Messages answered by a front door, by outcome (accepted, duplicate, rejected) and reason",
    ["door", "outcome", "reason", "message_type"],
)
HANDLED = Counter(
    "hl7lake_handler_events_total",
    "Hub events handled by a worker, by outcome (ok, retried, dead_lettered)",
    ["worker", "event", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "hl7lake_handler_seconds",
    "Time a worker spent on one receive of events",
    ["worker"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PARSE_FAILURES = Counter(
    "hl7lake_parse_failures_total", "Messages the staging worker could not parse, by reason", ["reason"]
)
END_TO_END_SECONDS = Histogram(
    "hl7lake_end_to_end_seconds",
    "From the front door's receipt to the lake's final status (parsed or failed)",
    ["status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)


class MetricsSettings(EnvSettings):
    """HL7LAKE_METRICS_HOST / HL7LAKE_METRICS_PORT of a worker or the MLLP listener (0: no endpoint;
    `hl7lake up` gives each child its METRICS_PORTS default, compose sets them per service)."""

    model_config = SettingsConfigDict(env_prefix="HL7LAKE_METRICS_", extra="ignore")

    host: str = LOCALHOST
    port: int = 0


_started: set[int] = set()
_lock = threading.Lock()


def serve(settings: MetricsSettings | None = None) -> None:
    """Starts the /metrics endpoint once per process (port 0: none)."""
    settings = settings or MetricsSettings()
    host, port = settings.host, settings.port
    if port <= 0:
        return
    with _lock:
        if port in _started:
            return
        try:
            start_http_server(port, addr=host)
        except OSError as exc:  # no metrics is no reason to stop handling messages
            log.error("metrics endpoint not served on %s:%d: %s", host, port, exc.__class__.__name__)
            return
        _started.add(port)
    log.info("metrics on http://%s:%d/metrics", host, port)
