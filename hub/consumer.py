"""The SQS consumer loop every worker shares.

Long poll, batch receive, handle concurrently, delete on success, back off on failure (the
message becomes visible again later; after the queue's maxReceiveCount SQS moves it to the DLQ).
An envelope that cannot be decoded is sent to the DLQ at once: retrying cannot fix it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.events import Envelope, EnvelopeError

log = logging.getLogger(__name__)

Handler = Callable[[Envelope], None]


@dataclass
class ConsumerStats:
    received: int = 0
    succeeded: int = 0
    retried: int = 0
    dead_lettered: int = 0


def backoff_seconds(receive_count: int, base: int, maximum: int) -> int:
    """Visibility timeout before the next try: base, 2·base, 4·base … capped."""
    return int(min(maximum, base * 2 ** max(0, receive_count - 1)))


class SqsConsumer:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        *,
        dlq_url: str | None = None,
        batch_size: int = 10,
        wait_seconds: int = 10,
        concurrency: int = 4,
        backoff_base: int = 2,
        backoff_max: int = 300,
        name: str = "consumer",
        heartbeat: Path | None = None,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self._dlq_url = dlq_url
        self._batch_size = max(1, min(10, batch_size))
        self._wait_seconds = max(0, min(20, wait_seconds))
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=name)
        self.name = name
        self._heartbeat = heartbeat
        self.stats = ConsumerStats()

    def run(self, stop: threading.Event) -> None:
        log.info("consumer started name=%s", self.name)
        try:
            while not stop.is_set():
                try:
                    self.poll_once()
                except Exception as exc:  # the queue itself is unreachable: wait, then retry
                    log.warning("receive failed name=%s error=%s", self.name, exc)
                    stop.wait(1.0)
        finally:
            self._pool.shutdown(wait=True)
            log.info("consumer stopped name=%s stats=%s", self.name, self.stats)

    def poll_once(self) -> int:
        response = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=self._batch_size,
            WaitTimeSeconds=self._wait_seconds,
            AttributeNames=["ApproximateReceiveCount"],
        )
        if self._heartbeat is not None:
            self._heartbeat.touch()
        messages = response.get("Messages", [])
        if not messages:
            return 0
        self.stats.received += len(messages)
        outcomes = list(self._pool.map(self._handle, messages))
        done = [m for m, ok in zip(messages, outcomes, strict=True) if ok]
        if done:
            self._delete(done)
        return len(done)

    def _handle(self, message: dict[str, Any]) -> bool:
        try:
            envelope = Envelope.from_json(message["Body"])
        except EnvelopeError as exc:
            try:
                self._dead_letter(message, str(exc))
            except Exception as dlq_exc:  # leave it in the queue; redrive moves it later
                log.error("dead-lettering failed name=%s error=%s", self.name, dlq_exc)
                return False
            return True  # now in the DLQ: delete it from the source queue
        try:
            self._handler(envelope)
        except Exception as exc:
            count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            delay = backoff_seconds(count, self._backoff_base, self._backoff_max)
            log.warning(
                "handler failed name=%s id=%s event=%s try=%d retry_in=%ds error=%s: %s",
                self.name,
                envelope.id,
                envelope.event.value,
                count,
                delay,
                exc.__class__.__name__,
                exc,
            )
            self.stats.retried += 1
            try:
                self._sqs.change_message_visibility(
                    QueueUrl=self._queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=delay,
                )
            except Exception as vis_exc:  # the message reappears after the queue's default
                log.warning("visibility change failed name=%s error=%s", self.name, vis_exc)
            return False
        self.stats.succeeded += 1
        return True

    def _dead_letter(self, message: dict[str, Any], reason: str) -> None:
        log.error("undecodable message name=%s sqs_id=%s: %s", self.name, message["MessageId"], reason)
        if self._dlq_url is None:
            raise RuntimeError("no DLQ configured for an undecodable message")
        self._sqs.send_message(
            QueueUrl=self._dlq_url,
            MessageBody=message["Body"],
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:256]}},
        )
        self.stats.dead_lettered += 1

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        result = self._sqs.delete_message_batch(QueueUrl=self._queue_url, Entries=entries)
        for failure in result.get("Failed", []):
            # Not fatal: the message comes back and the idempotent handler sees it again.
            log.warning("delete failed name=%s code=%s", self.name, failure.get("Code"))
