"""The hub's filter policies on the real emulator: matching events arrive, the others do not."""

from __future__ import annotations

import json

from hub import aws
from hub.events import Envelope, Event, Format
from hub.payloads import S3PayloadStore
from hub.publisher import SnsPublisher
from tests.integration.conftest import drain


def event(kind: Event, fmt: Format, n: int) -> Envelope:
    return Envelope(
        event=kind,
        id=f"ID{n}",
        source="hospital-a",
        received_at="2026-01-01T00:00:00.000Z",
        message_type="ADT^A01",
        control_id=f"C{n}",
        format=fmt,
        payload="MSH|^~\\&|x",
    )


def test_each_queue_gets_exactly_what_its_filter_allows(stack, sqs) -> None:
    settings, result = stack
    sns = aws.client("sns", settings.region)
    publisher = SnsPublisher(
        sns,
        result.topic_arn,
        S3PayloadStore(aws.client("s3", settings.region), settings.payload_bucket_name),
        settings.max_inline_bytes,
    )
    published = {
        "ID1": event(Event.RECEIVED, Format.ER7, 1),  # staging + lake
        "ID2": event(Event.RECEIVED, Format.JSON, 2),  # lake only (not ER7)
        "ID3": event(Event.PARSED, Format.JSON, 3),  # lake only
        "ID4": event(Event.FAILED, Format.JSON, 4),  # lake only
        "ID5": event(Event.PARSED, Format.ER7, 5),  # lake only (not a received event)
    }
    for envelope in published.values():
        publisher.publish(envelope)
    sns.publish(
        TopicArn=result.topic_arn,
        Message="{}",
        MessageAttributes={"event": {"DataType": "String", "StringValue": "something.else"}},
    )

    lake = drain(sqs, result.queues["lake-writer"], expect=5)
    staging = drain(sqs, result.queues["er7-staging"], expect=1)
    assert sorted(json.loads(m["Body"])["id"] for m in lake) == ["ID1", "ID2", "ID3", "ID4", "ID5"]
    assert [json.loads(m["Body"])["id"] for m in staging] == ["ID1"]
    # raw delivery: the body is the envelope itself and the attributes travel as SQS attributes
    [message] = staging
    assert Envelope.from_json(message["Body"]) == Envelope.from_json(published["ID1"].to_json())
    assert message["MessageAttributes"]["event"]["StringValue"] == "message.received"
    assert message["MessageAttributes"]["messageId"]["StringValue"] == "ID1"
