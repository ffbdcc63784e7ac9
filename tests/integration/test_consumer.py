"""The shared consumer loop on real SQS: delete on success, back off on failure, DLQ after N failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from hub.consumer import SqsConsumer, backoff_seconds
from hub.events import Envelope
from tests.factories import received_envelope
from tests.integration.conftest import drain, wait_for


def envelope(n: int) -> Envelope:
    return received_envelope("MSH|", message_id=f"ID{n}")


def test_backoff_doubles_and_caps() -> None:
    assert [backoff_seconds(n, 2, 30) for n in (1, 2, 3, 4, 5, 9)] == [2, 4, 8, 16, 30, 30]


def run_consumer(consumer: SqsConsumer, until: Callable[[], object], timeout: float = 20) -> object:
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,))
    thread.start()
    try:
        return wait_for(until, timeout=timeout)
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive()


def test_success_deletes_and_failure_retries_then_dead_letters_with_its_reason(stack, sqs) -> None:
    settings, result = stack
    url = result.queues["er7-staging"]
    dlq = sqs.get_queue_url(QueueName=settings.dlq_name("er7-staging"))["QueueUrl"]
    for n in (1, 2):
        attributes = {
            k: {"DataType": "String", "StringValue": v} for k, v in envelope(n).attributes().items()
        }
        sqs.send_message(QueueUrl=url, MessageBody=envelope(n).to_json(), MessageAttributes=attributes)
    sqs.send_message(QueueUrl=url, MessageBody="not json")
    seen: list[str] = []

    def handler(e: Envelope) -> None:
        seen.append(e.id)
        if e.id == "ID2":
            raise RuntimeError("downstream down")

    consumer = SqsConsumer(
        sqs, url, handler, dlq_url=dlq, wait_seconds=1, backoff_base=0, backoff_max=0, max_failures=3
    )
    dead = run_consumer(consumer, lambda: drain(sqs, dlq, expect=2, timeout=0.5) or None)
    by_body = {("ID2" if '"ID2"' in m["Body"] else m["Body"]): m for m in dead}
    assert sorted(by_body) == ["ID2", "not json"]
    failed = by_body["ID2"]["MessageAttributes"]
    assert failed["reason"]["StringValue"] == "RuntimeError: downstream down"
    assert failed["failures"]["StringValue"] == "3"
    assert failed["event"]["StringValue"] == "message.received"  # the hub's attributes travel along
    assert by_body["not json"]["MessageAttributes"]["reason"]["StringValue"].startswith("not a hub envelope")
    assert seen.count("ID1") == 1 and seen.count("ID2") == 3  # dead-lettered after exactly 3 failures
    assert consumer.stats.succeeded == 1 and consumer.stats.dead_lettered == 2
    assert drain(sqs, url, expect=0, timeout=0.2) == []


def test_receives_without_an_outcome_are_not_failures(stack, sqs) -> None:
    """A receive that timed out client-side (or a worker killed mid-batch) is not a handler failure:
    the soak saw acknowledged events dead-lettered without any failure."""
    settings, result = stack
    url = result.queues["er7-staging"]
    dlq = sqs.get_queue_url(QueueName=settings.dlq_name("er7-staging"))["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=envelope(3).to_json())
    for _ in range(3):  # three receives whose answers were lost: one short of the safety net (4)
        got = wait_for(lambda: sqs.receive_message(QueueUrl=url, VisibilityTimeout=0).get("Messages"))
        assert len(got) == 1
    calls: list[str] = []

    def handler(e: Envelope) -> None:
        calls.append(e.id)
        if len(calls) == 1:
            raise RuntimeError("catalog throttled")

    consumer = SqsConsumer(
        sqs, url, handler, dlq_url=dlq, wait_seconds=1, backoff_base=0, backoff_max=0, max_failures=2
    )
    run_consumer(consumer, lambda: consumer.stats.succeeded == 1)
    assert calls == ["ID3", "ID3"] and consumer.stats.retried == 1 and consumer.stats.dead_lettered == 0
    assert drain(sqs, dlq, expect=0, timeout=0.2) == []
    assert drain(sqs, url, expect=0, timeout=0.2) == []


def test_a_batch_handler_gets_one_call_per_receive(stack, sqs) -> None:
    _, result = stack
    url = result.queues["lake-writer"]
    for n in range(4):
        sqs.send_message(QueueUrl=url, MessageBody=envelope(10 + n).to_json())
    batches: list[list[str]] = []

    def handle(envelopes: Sequence[Envelope]) -> list[BaseException | None]:
        batches.append([e.id for e in envelopes])
        return [None] * len(envelopes)

    consumer = SqsConsumer(sqs, url, batch_handler=handle, wait_seconds=1)
    run_consumer(consumer, lambda: consumer.stats.succeeded == 4)
    assert sorted(i for batch in batches for i in batch) == ["ID10", "ID11", "ID12", "ID13"]
    assert drain(sqs, url, expect=0, timeout=0.2) == []


class _PollWatch:
    """The real SQS client, with a note of when a receive starts and returns (to see a poll in flight)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.started = threading.Event()
        self.returned = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def receive_message(self, **kwargs: Any) -> Any:
        self.started.set()
        try:
            return self._client.receive_message(**kwargs)
        finally:
            self.returned.set()


def test_stop_during_a_long_poll_finishes_promptly(stack, sqs) -> None:
    """The real case: a 10 s long poll on an empty queue is in flight when the stop arrives."""
    _, result = stack
    watched = _PollWatch(sqs)
    consumer = SqsConsumer(watched, result.queues["lake-writer"], lambda e: None, wait_seconds=10)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    assert watched.started.wait(5), "the consumer never polled"
    time.sleep(0.5)
    assert not watched.returned.is_set(), "the poll returned early: no long poll in flight to stop"
    stopped_at = time.monotonic()
    stop.set()
    thread.join(3)
    assert not thread.is_alive(), "the stop waited out the 10 s long poll"
    assert time.monotonic() - stopped_at < 3
    assert not watched.returned.is_set()  # the consumer ended while the poll was still waiting


def test_dead_letters_can_be_listed_and_redriven(stack, sqs) -> None:
    from hub import dlq

    settings, result = stack
    url = result.queues["er7-staging"]
    dlq_url = sqs.get_queue_url(QueueName=settings.dlq_name("er7-staging"))["QueueUrl"]
    for n in (7, 8):
        sqs.send_message(QueueUrl=dlq_url, MessageBody=envelope(n).to_json())
    sqs.send_message(
        QueueUrl=dlq_url,
        MessageBody="not json",
        MessageAttributes={"reason": {"DataType": "String", "StringValue": "not a hub envelope"}},
    )
    letters = dlq.peek(sqs, dlq_url)
    assert sorted(str(letter.message_id) for letter in letters) == ["ID7", "ID8", "None"]
    assert any(letter.reason == "not a hub envelope" for letter in letters)
    assert len(dlq.peek(sqs, dlq_url)) == 3  # looking removed nothing
    outcome = dlq.redrive(sqs, dlq_url, url)
    assert outcome.redriven == 2 and len(outcome.skipped) == 1  # "not json" can never succeed
    assert [letter.message_id for letter in dlq.peek(sqs, dlq_url)] == [None]
    back = drain(sqs, url, expect=2)
    assert sorted('"ID7"' in m["Body"] for m in back) == [False, True] and len(back) == 2
