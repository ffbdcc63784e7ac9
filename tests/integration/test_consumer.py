"""The shared consumer loop on real SQS: delete on success, back off on failure, DLQ after N tries."""

from __future__ import annotations

import threading

from hub.consumer import SqsConsumer, backoff_seconds
from hub.events import Envelope
from tests.factories import received_envelope
from tests.integration.conftest import drain, wait_for


def envelope(n: int) -> Envelope:
    return received_envelope("MSH|", message_id=f"ID{n}")


def test_backoff_doubles_and_caps() -> None:
    assert [backoff_seconds(n, 2, 30) for n in (1, 2, 3, 4, 5, 9)] == [2, 4, 8, 16, 30, 30]


def test_success_deletes_and_failure_retries_then_dead_letters(stack, sqs) -> None:
    settings, result = stack
    url = result.queues["er7-staging"]
    dlq = sqs.get_queue_url(QueueName=settings.dlq_name("er7-staging"))["QueueUrl"]
    for n in (1, 2):
        sqs.send_message(QueueUrl=url, MessageBody=envelope(n).to_json())
    sqs.send_message(QueueUrl=url, MessageBody="not json")
    seen: list[str] = []

    def handler(e: Envelope) -> None:
        seen.append(e.id)
        if e.id == "ID2":
            raise RuntimeError("downstream down")

    consumer = SqsConsumer(sqs, url, handler, dlq_url=dlq, wait_seconds=1, backoff_base=0, backoff_max=0)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,))
    thread.start()
    try:
        # ID2 fails on every try; after maxReceiveCount (2) SQS's redrive moves it to the DLQ
        dead = wait_for(lambda: drain(sqs, dlq, expect=2, timeout=0.5) or None, timeout=20)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    bodies = sorted(m["Body"] for m in dead)
    assert "not json" in bodies
    assert any('"ID2"' in b for b in bodies)
    assert seen.count("ID1") == 1 and seen.count("ID2") >= 2
    assert consumer.stats.succeeded == 1 and consumer.stats.dead_lettered == 1
    assert drain(sqs, url, expect=0, timeout=0.2) == []


def test_stop_finishes_promptly(stack, sqs) -> None:
    _, result = stack
    consumer = SqsConsumer(sqs, result.queues["lake-writer"], lambda e: None, wait_seconds=1)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,))
    thread.start()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


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
    assert dlq.redrive(sqs, dlq_url, url) == 3
    assert dlq.peek(sqs, dlq_url) == []
    back = drain(sqs, url, expect=3)
    assert "not json" in [m["Body"] for m in back] and len(back) == 3
