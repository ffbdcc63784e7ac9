"""Running a worker process: settings, queue lookup, signal handling around the consumer loop."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from hub import aws, metrics, telemetry
from hub.config import HubSettings
from hub.consumer import Batched, Handler, SqsConsumer
from hub.topology import subscription

log = logging.getLogger(__name__)


class WorkerSettings(HubSettings):
    wait_seconds: int = 5
    concurrency: int = 4
    backoff_base: int = 2
    backoff_max: int = 300
    # Handler failures before an event goes to the DLQ (with the last failure as its reason).
    max_failures: int = 5
    # The queues' VisibilityTimeout (stacks/*.yaml): long handlers keep their messages invisible.
    visibility_timeout: int = 60
    heartbeat_dir: str | None = None


def install_stop_signals(stop: threading.Event) -> None:
    """SIGTERM/SIGINT finish the batch in hand, then stop (only from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())


def heartbeat_path(settings: WorkerSettings, name: str) -> Path | None:
    if not settings.heartbeat_dir:
        return None
    directory = Path(settings.heartbeat_dir)
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{name}.heartbeat"


def run_worker(
    name: str,
    build_handler: Callable[[WorkerSettings], Handler | Batched],
    settings: WorkerSettings | None = None,
    stop: threading.Event | None = None,
) -> SqsConsumer:
    telemetry.configure_tracing(name)
    settings = settings or WorkerSettings()
    stop = stop or threading.Event()
    sub = subscription(name)
    # A long poll waits wait_seconds for messages: the read timeout must exceed it.
    sqs = aws.client("sqs", settings.region, read_timeout=settings.wait_seconds + 5, max_attempts=3)
    queue_url = sqs.get_queue_url(QueueName=settings.queue_name(sub.name))["QueueUrl"]
    dlq_url = sqs.get_queue_url(QueueName=settings.dlq_name(sub.name))["QueueUrl"]
    consumer = SqsConsumer(
        sqs,
        queue_url,
        build_handler(settings),
        dlq_url=dlq_url,
        max_failures=settings.max_failures,
        visibility_timeout=settings.visibility_timeout,
        wait_seconds=settings.wait_seconds,
        concurrency=settings.concurrency,
        backoff_base=settings.backoff_base,
        backoff_max=settings.backoff_max,
        name=name,
        heartbeat=heartbeat_path(settings, name),
    )
    install_stop_signals(stop)
    metrics.serve()
    consumer.run(stop)
    return consumer
