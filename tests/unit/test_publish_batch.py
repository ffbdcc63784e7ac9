"""Publishing many events at once: SNS PublishBatch within its limits, one outcome per event."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from hub.events import Envelope, Event, Format
from hub.publisher import MAX_BATCH_BYTES, HubRejected, HubUnavailable, SnsPublisher
from tests.factories import received_envelope
from tests.fakes.hub import MemoryHub, MemoryPayloadStore
from workers.er7_staging.handler import Er7StagingHandler

GOOD = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|C1|P|2.5\rPID|1||123\r"
BAD = "PID|1||123\r"


def envelopes(n: int, payload: str = GOOD) -> list[Envelope]:
    return [received_envelope(payload, message_id=f"ID{i:03d}") for i in range(n)]


def test_publish_batch_on_sns_delivers_everything_in_few_calls() -> None:
    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="hub")["TopicArn"]
        url = sqs.create_queue(QueueName="sub")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
        calls: list[str] = []
        sns.meta.events.register("before-call.sns.*", lambda model, **_: calls.append(model.name))
        payloads = MemoryPayloadStore()
        publisher = SnsPublisher(sns, topic, payloads, max_inline_bytes=100 * 1024)
        batch = envelopes(23)
        batch[5] = received_envelope("MSH|" + "X" * 150_000, message_id="BIG")  # goes by claim check

        assert publisher.publish_batch(batch) == [None] * 23
        assert calls == ["PublishBatch"] * 3  # 23 events: 10 + 10 + 3
        got: list[dict[str, Any]] = []
        while len(got) < 23:
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            assert messages, f"only {len(got)} of 23 arrived"
            got.extend(messages)
        ids = sorted(json.loads(m["Body"])["id"] for m in got)
        assert ids == sorted(e.id for e in batch)
        big = next(m for m in got if json.loads(m["Body"])["id"] == "BIG")
        assert json.loads(big["Body"])["payloadRef"]["size"] > 150_000
        assert big["MessageAttributes"]["event"]["StringValue"] == "message.received"


def test_chunks_respect_the_request_size_limit() -> None:
    sent: list[int] = []

    class CountingSns:
        def publish_batch(self, TopicArn: str, PublishBatchRequestEntries: list[dict[str, Any]]) -> Any:
            sent.append(sum(len(e["Message"]) for e in PublishBatchRequestEntries))
            return {"Successful": [{"Id": e["Id"]} for e in PublishBatchRequestEntries], "Failed": []}

    publisher = SnsPublisher(CountingSns(), "arn:topic", MemoryPayloadStore(), max_inline_bytes=200 * 1024)
    assert publisher.publish_batch(envelopes(6, "MSH|" + "Y" * 90_000)) == [None] * 6
    assert len(sent) >= 3 and max(sent) <= MAX_BATCH_BYTES


class PartlyFailingSns:
    def publish_batch(self, TopicArn: str, PublishBatchRequestEntries: list[dict[str, Any]]) -> Any:
        ids = [e["Id"] for e in PublishBatchRequestEntries]
        return {
            "Successful": [{"Id": i} for i in ids[2:]],
            "Failed": [{"Id": ids[0], "Code": "InvalidParameter", "SenderFault": True}],
            # ids[1] is in neither list
        }


def test_each_entry_gets_its_own_outcome() -> None:
    publisher = SnsPublisher(PartlyFailingSns(), "arn:topic", MemoryPayloadStore(), 200 * 1024)
    outcomes = publisher.publish_batch(envelopes(4))
    assert isinstance(outcomes[0], HubRejected)
    assert isinstance(outcomes[1], HubUnavailable)  # no answer for it: not known to be in the hub
    assert outcomes[2:] == [None, None]


def test_a_failed_request_fails_every_entry_as_unavailable() -> None:
    class DownSns:
        def publish_batch(self, **_: Any) -> Any:
            raise ConnectionError("emulator down")

    publisher = SnsPublisher(DownSns(), "arn:topic", MemoryPayloadStore(), 200 * 1024)
    assert all(isinstance(o, HubUnavailable) for o in publisher.publish_batch(envelopes(3)))


class FlakyHub(MemoryHub):
    def publish(self, envelope: Envelope) -> str:
        if envelope.id == "ID001":
            raise HubUnavailable("hub unavailable: simulated")
        return super().publish(envelope)


def test_staging_publishes_a_whole_receive_and_reports_each_outcome() -> None:
    hub = FlakyHub()
    handler = Er7StagingHandler(hub, hub.payloads)
    batch = [*envelopes(2), received_envelope(BAD, message_id="BAD")]
    outcomes = handler.handle_batch(batch)
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], HubUnavailable)  # the consumer retries just this one
    events = {(e.id, e.event) for e in hub.published}
    assert events == {("ID000", Event.PARSED), ("BAD", Event.FAILED)}
    failed = next(e for e in hub.published if e.id == "BAD")
    assert failed.format is Format.JSON and failed.error and failed.error["segment"] == "PID"


def test_the_single_handler_raises_what_the_batch_reports() -> None:
    hub = FlakyHub()
    handler = Er7StagingHandler(hub, hub.payloads)
    handler.handle(received_envelope(GOOD, message_id="ID000"))
    with pytest.raises(HubUnavailable):
        handler.handle(received_envelope(GOOD, message_id="ID001"))
