"""The SQS consumer loop every worker shares.

Long poll, batch receive, handle concurrently, delete on success (in batches). A handler failure is
counted on the message itself: the consumer sends it back to its queue with a delay (exponential
back-off) and two more attributes, ``failures`` and ``reason`` (the last failure, bounded), then
deletes the original. After ``max_failures`` handler failures it goes to the DLQ with the same
attributes, so every dead letter says why. Receives that end without an outcome (a worker killed,
a client-side timeout) do not count as failures; the queue's own redrive policy (maxReceiveCount)
stays as the safety net for a message that kills its worker.
An envelope that cannot be decoded is sent to the DLQ at once: retrying cannot fix it.

Stop: the loop stops polling at once (a long poll in flight is abandoned; messages it still
returns are made visible again at once, or reappear after the visibility timeout if the process
has exited first) and finishes only the batch in hand.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode

from hub import metrics, steps, telemetry
from hub.events import Envelope, EnvelopeError
from hub.tracebacks import exception_location

log = logging.getLogger(__name__)

Handler = Callable[[Envelope], None]
# Handles a whole receive at once (e.g. to publish results in one batch call): one outcome per
# envelope, None for success or the exception that failed it.
BatchHandler = Callable[[Sequence[Envelope]], list[BaseException | None]]


@dataclass(frozen=True)
class Batched:
    """What a worker's build function returns when it handles whole receives (see BatchHandler)."""

    handle: BatchHandler


FAILURES_ATTRIBUTE, REASON_ATTRIBUTE = "failures", "reason"
TRACEPARENT_ATTRIBUTE = telemetry.TRACEPARENT
MAX_REASON_CHARS = 256
SQS_MAX_DELAY_SECONDS = 900


@dataclass
class ConsumerStats:
    received: int = 0
    succeeded: int = 0
    retried: int = 0
    dead_lettered: int = 0


def backoff_seconds(failures: int, base: int, maximum: int) -> int:
    """Delay before the next try: base, 2·base, 4·base … capped."""
    return int(min(maximum, base * 2 ** max(0, failures - 1)))


def _visibility_entries(messages: list[dict[str, Any]], seconds: int) -> list[dict[str, Any]]:
    """ChangeMessageVisibilityBatch entries giving each received message `seconds` of invisibility."""
    return [
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": seconds}
        for i, m in enumerate(messages)
    ]


def failure_reason(exc: BaseException) -> str:
    """What the DLQ and the logs say: the exception class and its bounded text (never a message body:
    handlers raise for infrastructure failures; bad messages become `message.failed` events)."""
    text = f"{exc.__class__.__name__}: {exc}"
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


def failures_of(message: dict[str, Any]) -> int:
    """The handler failures counted on a received message so far."""
    value = message.get("MessageAttributes", {}).get(FAILURES_ATTRIBUTE, {}).get("StringValue", "0")
    return int(value) if str(value).isdigit() else 0


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


class _Poll:
    """One receive in a daemon thread, so that a stop need not wait out a long poll (a daemon: the
    process may exit while SQS still holds the request open)."""

    def __init__(self, receive: Callable[[], list[dict[str, Any]]]) -> None:
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._messages: list[dict[str, Any]] = []
        self._error: Exception | None = None
        self._on_abandoned: Callable[[list[dict[str, Any]]], None] | None = None
        threading.Thread(target=self._run, args=(receive,), name="poll", daemon=True).start()

    def _run(self, receive: Callable[[], list[dict[str, Any]]]) -> None:
        try:
            self._messages = receive()
        except Exception as exc:
            self._error = exc
        with self._lock:
            self._done.set()
            release = self._on_abandoned
        if release is not None and self._messages:
            release(self._messages)

    def wait(self, stop: threading.Event, tick: float = 0.1) -> list[dict[str, Any]] | None:
        """The messages received; None when ``stop`` was set first."""
        while not self._done.wait(tick):
            if stop.is_set():
                return None
        if self._error is not None:
            raise self._error
        return self._messages

    def abandon(self, release: Callable[[list[dict[str, Any]]], None]) -> None:
        """``release`` gets whatever this poll receives after all (at once if it is already done)."""
        with self._lock:
            self._on_abandoned = release
            done = self._done.is_set()
        if done and self._messages:
            release(self._messages)


class SqsConsumer:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler | Batched | None = None,
        *,
        batch_handler: BatchHandler | None = None,
        dlq_url: str | None = None,
        batch_size: int = 10,
        wait_seconds: int = 10,
        concurrency: int = 4,
        backoff_base: int = 2,
        backoff_max: int = 300,
        max_failures: int = 5,
        visibility_timeout: int | None = None,
        name: str = "consumer",
        heartbeat: Path | None = None,
    ) -> None:
        if isinstance(handler, Batched):
            batch_handler, handler = handler.handle, None
        if (handler is None) == (batch_handler is None):
            raise ValueError("give exactly one of handler or batch_handler")
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler: Handler | None = handler
        self._batch_handler = batch_handler
        self._dlq_url = dlq_url
        self._batch_size = max(1, min(10, batch_size))
        self._wait_seconds = max(0, min(20, wait_seconds))
        self._backoff_base = backoff_base
        self._backoff_max = min(backoff_max, SQS_MAX_DELAY_SECONDS)
        self._max_failures = max(1, max_failures)
        # The queue's visibility timeout: a receive still being handled after half of it is made
        # invisible for another full timeout, so a long handler is not raced by a second worker.
        self._visibility = visibility_timeout
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=name)
        self.name = name
        self._heartbeat = heartbeat
        self.stats = ConsumerStats()

    def run(self, stop: threading.Event) -> None:
        log.info("consumer started name=%s", self.name)
        try:
            while not stop.is_set():
                try:
                    self._poll_until(stop)
                except Exception as exc:  # the queue itself is unreachable: wait, then retry
                    log.warning("receive failed name=%s error=%s", self.name, exc.__class__.__name__)
                    stop.wait(1.0)
        finally:
            self._pool.shutdown(wait=True)
            log.info("consumer stopped name=%s stats=%s", self.name, self.stats)

    def poll_once(self) -> int:
        return self._handle_received(self._receive())

    def _poll_until(self, stop: threading.Event) -> int:
        """One poll, unless ``stop`` is set while it waits: then the poll is abandoned."""
        poll = _Poll(self._receive)
        messages = poll.wait(stop)
        if messages is None:
            poll.abandon(self._release)
            log.info("stopping name=%s: the poll in flight is abandoned", self.name)
            return 0
        return self._handle_received(messages)

    def _receive(self) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=self._batch_size,
            WaitTimeSeconds=self._wait_seconds,
            AttributeNames=["ApproximateReceiveCount"],
            MessageAttributeNames=["All"],
        )
        if self._heartbeat is not None:
            self._heartbeat.touch()
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def _release(self, messages: list[dict[str, Any]]) -> None:
        """Messages an abandoned poll received: visible again now, for the next worker."""
        entries = _visibility_entries(messages, 0)
        try:
            self._sqs.change_message_visibility_batch(QueueUrl=self._queue_url, Entries=entries)
            log.info("released name=%s messages=%d received while stopping", self.name, len(entries))
        except Exception as exc:  # they reappear after the visibility timeout
            log.warning("release failed name=%s error=%s", self.name, exc.__class__.__name__)

    def _handle_received(self, messages: list[dict[str, Any]]) -> int:
        if not messages:
            return 0
        self.stats.received += len(messages)
        with self._kept_invisible(messages), metrics.HANDLER_SECONDS.labels(self.name).time():
            outcomes = self._handle_all(messages)
        done = [m for m, finished in zip(messages, outcomes, strict=True) if finished]
        if done:
            self._delete(done)
        return len(done)

    @contextmanager
    def _kept_invisible(self, messages: list[dict[str, Any]]) -> Iterator[None]:
        if not self._visibility:
            yield
            return
        done = threading.Event()
        keeper = threading.Thread(target=self._extend_visibility, args=(messages, done), daemon=True)
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join()

    def _extend_visibility(self, messages: list[dict[str, Any]], done: threading.Event) -> None:
        assert self._visibility
        entries = _visibility_entries(messages, self._visibility)
        while not done.wait(self._visibility / 2):
            try:
                self._sqs.change_message_visibility_batch(QueueUrl=self._queue_url, Entries=entries)
                log.info("still handling name=%s messages=%d: visibility extended", self.name, len(entries))
            except Exception as exc:  # the next try may work; a lapse only risks a duplicate handling
                log.warning("visibility extension failed name=%s error=%s", self.name, exc.__class__.__name__)

    def _handle_all(self, messages: list[dict[str, Any]]) -> list[bool]:
        """For each message: may it be deleted now (handled, dead-lettered or sent back for later)?"""
        decoded: list[tuple[int, Envelope]] = []
        finished = [False] * len(messages)
        for i, message in enumerate(messages):
            try:
                decoded.append((i, Envelope.from_json(message["Body"])))
            except EnvelopeError as exc:
                finished[i] = self._dead_letter_undecodable(message, str(exc))
        spans = [self._span(messages[i], envelope) for i, envelope in decoded]
        # Each envelope names its handling span as the parent of the events derived from it.
        envelopes = [
            replace(e, traceparent=telemetry.traceparent_of(span))
            for (_, e), span in zip(decoded, spans, strict=True)
        ]
        tries = {(e.id, e.event.value): failures_of(messages[i]) + 1 for i, e in decoded}
        if self._batch_handler is not None:
            with steps.delivered(tries):
                outcomes = self._run_batch(envelopes)
        else:
            outcomes = list(self._pool.map(self._run_one, envelopes, spans, [tries] * len(spans)))
        for span, outcome in zip(spans, outcomes, strict=True):
            if outcome is not None:
                span.set_status(Status(StatusCode.ERROR, outcome.__class__.__name__))
            span.end()
        for (i, envelope), outcome in zip(decoded, outcomes, strict=True):
            if outcome is None:
                self.stats.succeeded += 1
                metrics.HANDLED.labels(self.name, envelope.event.value, "ok").inc()
                finished[i] = True
            else:
                finished[i] = self._after_failure(messages[i], envelope, outcome)
        return finished

    def _span(self, message: dict[str, Any], envelope: Envelope) -> Span:
        """The span handling one message: a child of the span that published it, when it says so."""
        traceparent = message.get("MessageAttributes", {}).get(TRACEPARENT_ATTRIBUTE, {}).get("StringValue")
        return telemetry.start_span(
            f"{self.name} {envelope.event.value}", traceparent, **{"hl7lake.message_id": envelope.id}
        )

    def _run_one(
        self, envelope: Envelope, span: Span, tries: dict[tuple[str, str], int]
    ) -> BaseException | None:
        assert self._handler is not None
        try:
            with telemetry.current(span), steps.delivered(tries):
                self._handler(envelope)
        except Exception as exc:
            return exc
        return None

    def _run_batch(self, envelopes: list[Envelope]) -> list[BaseException | None]:
        assert self._batch_handler is not None
        if not envelopes:
            return []
        try:
            outcomes = self._batch_handler(envelopes)
        except Exception as exc:
            return [exc] * len(envelopes)
        if len(outcomes) != len(envelopes):
            error = RuntimeError(f"batch handler gave {len(outcomes)} outcomes for {len(envelopes)} messages")
            return [error] * len(envelopes)
        return outcomes

    def _after_failure(self, message: dict[str, Any], envelope: Envelope, exc: BaseException) -> bool:
        attributes = dict(message.get("MessageAttributes", {}))
        failures = failures_of(message) + 1
        reason = failure_reason(exc)
        attributes[FAILURES_ATTRIBUTE] = _string(str(failures))
        attributes[REASON_ATTRIBUTE] = _string(reason)
        give_up = failures >= self._max_failures and self._dlq_url is not None
        delay = 0 if give_up else backoff_seconds(failures, self._backoff_base, self._backoff_max)
        log.warning(
            "handler failed name=%s id=%s event=%s failures=%d/%d %s error=%s at=%s",
            self.name,
            envelope.id,
            envelope.event.value,
            failures,
            self._max_failures,
            "dead-lettering" if give_up else f"retry_in={delay}s",
            exc.__class__.__name__,
            exception_location(exc),
        )
        try:
            if give_up:
                self._sqs.send_message(
                    QueueUrl=self._dlq_url, MessageBody=message["Body"], MessageAttributes=attributes
                )
                self.stats.dead_lettered += 1
                metrics.HANDLED.labels(self.name, envelope.event.value, "dead_lettered").inc()
            else:
                self._sqs.send_message(
                    QueueUrl=self._queue_url,
                    MessageBody=message["Body"],
                    MessageAttributes=attributes,
                    DelaySeconds=delay,
                )
                self.stats.retried += 1
                metrics.HANDLED.labels(self.name, envelope.event.value, "retried").inc()
            return True  # the copy carries the count: delete the original
        except Exception as send_exc:  # leave the original; it comes back after a back-off
            log.warning("retry send failed name=%s error=%s", self.name, send_exc.__class__.__name__)
            self._change_visibility(message, delay or self._backoff_base)
            return False

    def _change_visibility(self, message: dict[str, Any], seconds: int) -> None:
        try:
            self._sqs.change_message_visibility(
                QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=seconds
            )
        except Exception as exc:  # the message reappears after the queue's default
            log.warning("visibility change failed name=%s error=%s", self.name, exc.__class__.__name__)

    def _dead_letter_undecodable(self, message: dict[str, Any], reason: str) -> bool:
        log.error("undecodable message name=%s sqs_id=%s", self.name, message["MessageId"])
        if self._dlq_url is None:
            log.error("no DLQ configured for an undecodable message name=%s", self.name)
            return False
        try:
            self._sqs.send_message(
                QueueUrl=self._dlq_url,
                MessageBody=message["Body"],
                MessageAttributes={REASON_ATTRIBUTE: _string(reason[:MAX_REASON_CHARS])},
            )
        except Exception as exc:  # leave it in the queue; SQS's redrive moves it later
            log.error("dead-lettering failed name=%s error=%s", self.name, exc.__class__.__name__)
            return False
        self.stats.dead_lettered += 1
        metrics.HANDLED.labels(self.name, "undecodable", "dead_lettered").inc()
        return True  # now in the DLQ: delete it from the source queue

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        result = self._sqs.delete_message_batch(QueueUrl=self._queue_url, Entries=entries)
        for failure in result.get("Failed", []):
            # Not fatal: the message comes back and the idempotent handler sees it again.
            log.warning("delete failed name=%s code=%s", self.name, failure.get("Code"))
