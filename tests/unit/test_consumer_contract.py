"""The consumer loop's contract, on an in-memory SQS and on moto's SQS (in process) side by side:
delete on success, failures counted on the message with the last reason, the DLQ after N failures,
an undecodable body to the DLQ at once, and a batch handler's outcomes one by one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import pytest
from moto import mock_aws

from hub.consumer import Batched, SqsConsumer
from hub.events import Envelope
from tests.factories import received_envelope
from tests.fakes.sqs import MemorySqs


class Queues:
    def __init__(self, sqs: Any) -> None:
        self.sqs = sqs
        name = f"q{uuid.uuid4().hex[:8]}"
        self.url = sqs.create_queue(QueueName=name)["QueueUrl"]
        self.dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]

    def send(self, envelope: Envelope | str) -> None:
        if isinstance(envelope, str):
            self.sqs.send_message(QueueUrl=self.url, MessageBody=envelope)
            return
        attributes = {k: {"DataType": "String", "StringValue": v} for k, v in envelope.attributes().items()}
        self.sqs.send_message(QueueUrl=self.url, MessageBody=envelope.to_json(), MessageAttributes=attributes)

    def drain(self, url: str) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return got
            got += messages
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            self.sqs.delete_message_batch(QueueUrl=url, Entries=entries)


@pytest.fixture(params=["memory", "sqs"])
def queues(request: pytest.FixtureRequest) -> Iterator[Queues]:
    if request.param == "memory":
        yield Queues(MemorySqs())
        return
    with mock_aws():
        yield Queues(boto3.client("sqs", region_name="us-east-1"))


def consumer(queues: Queues, handler: Any, max_failures: int = 3) -> SqsConsumer:
    return SqsConsumer(
        queues.sqs,
        queues.url,
        handler,
        dlq_url=queues.dlq,
        wait_seconds=0,
        backoff_base=0,
        backoff_max=0,
        max_failures=max_failures,
    )


def envelope(n: int) -> Envelope:
    return received_envelope("MSH|", message_id=f"ID{n}")


def test_success_deletes(queues: Queues) -> None:
    seen: list[str] = []
    queues.send(envelope(1))
    assert consumer(queues, lambda e: seen.append(e.id)).poll_once() == 1
    assert seen == ["ID1"]
    assert queues.drain(queues.url) == [] and queues.drain(queues.dlq) == []


def test_failures_are_counted_on_the_message_then_it_goes_to_the_dlq_with_its_reason(queues: Queues) -> None:
    calls: list[str] = []

    def failing(e: Envelope) -> None:
        calls.append(e.id)
        raise RuntimeError("catalog throttled")

    loop = consumer(queues, failing, max_failures=3)
    queues.send(envelope(2))
    for _ in range(3):
        loop.poll_once()
    assert calls == ["ID2"] * 3
    assert queues.drain(queues.url) == []
    [dead] = queues.drain(queues.dlq)
    assert dead["MessageAttributes"]["failures"]["StringValue"] == "3"
    assert dead["MessageAttributes"]["reason"]["StringValue"] == "RuntimeError: catalog throttled"
    assert (
        dead["MessageAttributes"]["event"]["StringValue"] == "message.received"
    )  # the hub's attributes stay
    assert loop.stats.retried == 2 and loop.stats.dead_lettered == 1


def test_a_retry_that_succeeds_leaves_nothing_behind(queues: Queues) -> None:
    calls: list[str] = []

    def flaky(e: Envelope) -> None:
        calls.append(e.id)
        if len(calls) == 1:
            raise RuntimeError("once")

    loop = consumer(queues, flaky)
    queues.send(envelope(3))
    loop.poll_once()
    loop.poll_once()
    assert calls == ["ID3", "ID3"] and loop.stats.succeeded == 1
    assert queues.drain(queues.url) == [] and queues.drain(queues.dlq) == []


def test_an_undecodable_body_goes_to_the_dlq_at_once(queues: Queues) -> None:
    queues.send("not json")
    loop = consumer(queues, lambda e: None)
    assert loop.poll_once() == 1
    [dead] = queues.drain(queues.dlq)
    assert dead["Body"] == "not json" and dead["MessageAttributes"]["reason"]["StringValue"]
    assert queues.drain(queues.url) == []


def test_a_batch_handler_settles_each_message_on_its_own(queues: Queues) -> None:
    def handle(envelopes: Sequence[Envelope]) -> list[BaseException | None]:
        return [RuntimeError("no") if e.id == "ID5" else None for e in envelopes]

    for n in (4, 5, 6):
        queues.send(envelope(n))
    loop = consumer(queues, Batched(handle), max_failures=1)
    loop.poll_once()
    assert loop.stats.succeeded == 2 and loop.stats.dead_lettered == 1
    [dead] = queues.drain(queues.dlq)
    assert '"ID5"' in dead["Body"]
    assert queues.drain(queues.url) == []
