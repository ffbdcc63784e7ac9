"""One contract per port, the in-memory fake and the real AWS adapter (moto in process) side by side:
lake objects, the claim-check payload store, the publisher with the real filter policies, the DLQ tool.

The catalog and the dedup store have theirs in test_catalog_contract.py and test_dedup_protocol.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from hub import dlq
from hub.events import Envelope, Event, Format
from hub.payloads import PayloadStore, S3PayloadStore, load_payload
from hub.publisher import Publisher, SnsPublisher
from hub.topology import SUBSCRIPTIONS
from lake.layout import RAW, object_key
from lake.objects import ObjectStore, S3ObjectStore
from tests.factories import received_envelope
from tests.fakes.hub import MemoryHub, MemoryPayloadStore
from tests.fakes.lake import MemoryObjectStore
from tests.unit.test_dlq_tool import FakeSqs

REGION = "us-east-1"


def _bucket(s3: Any) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


# --- lake objects -------------------------------------------------------------------------------

ObjectReader = Callable[[str], tuple[bytes, str]]


@pytest.fixture(params=["memory", "s3"])
def objects(request: pytest.FixtureRequest) -> Iterator[tuple[ObjectStore, ObjectReader]]:
    if request.param == "memory":
        memory = MemoryObjectStore()
        yield memory, lambda key: memory.objects[key]
        return
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        store = S3ObjectStore(s3, _bucket(s3))

        def read(key: str) -> tuple[bytes, str]:
            got = s3.get_object(Bucket=store.bucket, Key=key)
            assert got["ServerSideEncryption"] == "AES256"
            return got["Body"].read(), got["ContentType"]

        yield store, read


KEY = object_key(
    RAW, source="hospital-a", message_type="ADT^A01", received_at="2026-01-02T03:04:05Z", message_id="01JX"
)


def test_object_put_then_read_back_body_and_content_type(objects: tuple[ObjectStore, ObjectReader]) -> None:
    store, read = objects
    body = "MSH|^~\\&|Ünïcode\r".encode()
    store.put(KEY, body, "application/hl7-v2")
    assert read(KEY) == (body, "application/hl7-v2")
    assert store.bucket


def test_object_put_again_is_idempotent_and_last_write_wins(
    objects: tuple[ObjectStore, ObjectReader],
) -> None:
    store, read = objects
    store.put(KEY, b"one", "text/plain")
    store.put(KEY, b"one", "text/plain")  # a redelivery
    assert read(KEY) == (b"one", "text/plain")
    store.put(KEY, b"{}", "application/json")
    assert read(KEY) == (b"{}", "application/json")


def test_objects_under_different_keys_stay_apart(objects: tuple[ObjectStore, ObjectReader]) -> None:
    store, read = objects
    other = KEY.replace("01JX", "01JY")
    store.put(KEY, b"x", "text/plain")
    store.put(other, b"y", "text/plain")
    assert (read(KEY)[0], read(other)[0]) == (b"x", b"y")


# --- claim-check payload store ------------------------------------------------------------------


@pytest.fixture(params=["memory", "s3"])
def payloads(request: pytest.FixtureRequest) -> Iterator[PayloadStore]:
    if request.param == "memory":
        yield MemoryPayloadStore(bucket="claims")
        return
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        yield S3PayloadStore(s3, _bucket(s3))


def test_payload_put_gives_a_ref_that_gets_the_same_bytes(payloads: PayloadStore) -> None:
    body = "é€ 🏥".encode() * 1000
    ref = payloads.put("payloads/message.received/01JX.er7", body)
    assert (ref.key, ref.size) == ("payloads/message.received/01JX.er7", len(body)) and ref.bucket
    assert payloads.get(ref) == body


def test_payload_get_of_an_unknown_key_raises(payloads: PayloadStore) -> None:
    ref = payloads.put("payloads/a", b"a")
    with pytest.raises((KeyError, ClientError)):  # memory: KeyError; S3: NoSuchKey
        payloads.get(replace(ref, key="payloads/never-written"))


# --- publisher: SNS → raw-delivery SQS queues with the real filter policies ----------------------


@dataclass
class Hub:
    publisher: Publisher
    payloads: PayloadStore
    drain: Callable[[str], list[Envelope]]


MAX_INLINE = 2048


@pytest.fixture(params=["memory", "sns"])
def hub(request: pytest.FixtureRequest) -> Iterator[Hub]:
    if request.param == "memory":
        memory = MemoryHub(payloads=MemoryPayloadStore(), max_inline_bytes=MAX_INLINE)
        yield Hub(memory, memory.payloads, memory.drain)
        return
    with mock_aws():
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        topic = sns.create_topic(Name=f"hub-{uuid.uuid4().hex[:8]}")["TopicArn"]
        urls: dict[str, str] = {}
        for name, sub in SUBSCRIPTIONS.items():
            url = sqs.create_queue(QueueName=f"{name}-{uuid.uuid4().hex[:8]}")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            sns.subscribe(
                TopicArn=topic,
                Protocol="sqs",
                Endpoint=arn,
                Attributes={"RawMessageDelivery": "true", "FilterPolicy": json.dumps(sub.filter_policy)},
            )
            urls[name] = url
        store = S3PayloadStore(s3, _bucket(s3))

        def drain(name: str) -> list[Envelope]:
            got: list[Envelope] = []
            while True:
                messages = sqs.receive_message(
                    QueueUrl=urls[name], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
                ).get("Messages", [])
                if not messages:
                    return got
                for m in messages:
                    envelope = Envelope.from_json(m["Body"])  # raw delivery: the body is the envelope
                    attributes = {k: v["StringValue"] for k, v in m["MessageAttributes"].items()}
                    assert attributes == envelope.attributes()
                    got.append(envelope)
                    sqs.delete_message(QueueUrl=urls[name], ReceiptHandle=m["ReceiptHandle"])

        yield Hub(SnsPublisher(sns, topic, store, MAX_INLINE), store, drain)


RECEIVED = received_envelope("MSH|^~\\&|LAB|HOSP_A\r", message_id="01JREC")
PARSED = RECEIVED.derive(Event.PARSED, Format.JSON, id="01JPAR", payload={"MSH": {"9": "ADT^A01"}})
FAILED = RECEIVED.derive(Event.FAILED, Format.JSON, id="01JFAIL", error={"reason": "bad MSH-9"})
BATCH = replace(RECEIVED, event=Event.BATCH_RECEIVED, id="01JBATCH", batch={"messages": 3})
JSON_RECEIVED = replace(RECEIVED, id="01JJSON", format=Format.JSON, payload={"x": 1})
CONVERTED = PARSED.derive(Event.CONVERTED, Format.FHIR, id="01JCONV", payload={"resourceType": "Bundle"})

# Who gets what, by the real filter policies: an expectation written out, not computed from them.
ROUTES = {
    RECEIVED.id: {"er7-staging", "lake-writer"},
    PARSED.id: {"lake-writer", "fhir-r4"},  # an ADT^A01: a type the FHIR worker maps
    CONVERTED.id: {"lake-writer"},
    FAILED.id: {"lake-writer"},
    BATCH.id: {"lake-writer", "batch-splitter"},
    JSON_RECEIVED.id: {"lake-writer"},  # received, but not ER7: never staged
}
ALL = [RECEIVED, PARSED, FAILED, BATCH, JSON_RECEIVED, CONVERTED]


def _delivered(hub: Hub) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for name in SUBSCRIPTIONS:
        for envelope in hub.drain(name):
            routes.setdefault(envelope.id, set()).add(name)
    return routes


def test_publish_delivers_matching_events_and_only_those(hub: Hub) -> None:
    for envelope in ALL:
        assert hub.publisher.publish(envelope)
    assert _delivered(hub) == ROUTES


def test_publish_batch_delivers_like_publish_with_one_outcome_each(hub: Hub) -> None:
    assert hub.publisher.publish_batch(ALL) == [None] * len(ALL)
    assert _delivered(hub) == ROUTES


def test_publish_batch_of_more_than_ten_delivers_every_one(hub: Hub) -> None:
    many = [replace(RECEIVED, id=f"01JMANY{n:02d}") for n in range(23)]
    assert hub.publisher.publish_batch(many) == [None] * 23
    [staged, written] = [sorted(e.id for e in hub.drain(n)) for n in ("er7-staging", "lake-writer")]
    assert staged == written == sorted(e.id for e in many)
    assert hub.drain("batch-splitter") == []


def test_the_delivered_envelope_is_the_published_one(hub: Hub) -> None:
    hub.publisher.publish(PARSED)
    [got] = hub.drain("lake-writer")
    assert got == PARSED


@pytest.mark.parametrize("batch", [False, True], ids=["publish", "publish_batch"])
def test_a_large_payload_travels_by_claim_check_and_comes_back(hub: Hub, batch: bool) -> None:
    big = received_envelope("MSH|^~\\&|" + "é" * MAX_INLINE, message_id="01JBIG")
    if batch:
        assert hub.publisher.publish_batch([big]) == [None]
    else:
        hub.publisher.publish(big)
    [staged] = hub.drain("er7-staging")
    assert staged.payload is None and staged.payload_ref is not None
    assert staged.payload_ref.key == "payloads/message.received/01JBIG.er7"
    assert load_payload(staged, hub.payloads) == big.payload
    [written] = hub.drain("lake-writer")
    assert load_payload(written, hub.payloads) == big.payload


# --- the DLQ tool: peek and redrive on real SQS and on the fake SQS of test_dlq_tool ------------


class Queues:
    """The two queues of one subscriber, on either SQS."""

    sqs: Any
    dlq: str
    queue: str

    def put(self, url: str, body: str, attributes: dict[str, Any] | None = None) -> None:
        raise NotImplementedError

    def bodies(self, url: str) -> list[str]:
        """Every visible message's body (and leaves them visible)."""
        raise NotImplementedError


class FakeQueues(Queues):
    def __init__(self) -> None:
        self.sqs = FakeSqs()
        self.dlq, self.queue = "https://sqs/dlq", "https://sqs/queue"

    def put(self, url: str, body: str, attributes: dict[str, Any] | None = None) -> None:
        self.sqs.put(url, body, attributes)

    def bodies(self, url: str) -> list[str]:
        return sorted(m.body for m in self.sqs.queues[url] if m.visible)


class MotoQueues(Queues):
    def __init__(self) -> None:
        self.sqs = boto3.client("sqs", region_name=REGION)
        suffix = uuid.uuid4().hex[:8]
        self.dlq = self.sqs.create_queue(QueueName=f"w-{suffix}-dlq")["QueueUrl"]
        self.queue = self.sqs.create_queue(QueueName=f"w-{suffix}")["QueueUrl"]

    def put(self, url: str, body: str, attributes: dict[str, Any] | None = None) -> None:
        kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": body}
        if attributes:
            kwargs["MessageAttributes"] = attributes
        self.sqs.send_message(**kwargs)

    def bodies(self, url: str) -> list[str]:
        got = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return sorted(m["Body"] for m in got.get("Messages", []))


@pytest.fixture(params=["fake", "sqs"])
def queues(request: pytest.FixtureRequest) -> Iterator[Queues]:
    if request.param == "fake":
        yield FakeQueues()
        return
    with mock_aws():
        yield MotoQueues()


def attr(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def body(n: int) -> str:
    return received_envelope("MSH|^~\\&|A", message_id=f"01JDLQ{n}").to_json()


def test_peek_shows_reasons_and_removes_nothing(queues: Queues) -> None:
    queues.put(queues.dlq, body(1), {"reason": attr("RuntimeError: boom"), "failures": attr("5")})
    queues.put(queues.dlq, body(2))
    letters = sorted(dlq.peek(queues.sqs, queues.dlq), key=lambda d: str(d.message_id))
    assert [(d.message_id, d.event, d.reason, d.failures) for d in letters] == [
        ("01JDLQ1", "message.received", "RuntimeError: boom", 5),
        ("01JDLQ2", "message.received", None, None),
    ]
    assert letters[1].explanation().startswith("moved by SQS after")
    assert queues.bodies(queues.dlq) == [body(1), body(2)]  # still there and visible again
    assert len(dlq.peek(queues.sqs, queues.dlq)) == 2


def test_peek_respects_the_limit_and_shows_everything_again(queues: Queues) -> None:
    for n in range(12):
        queues.put(queues.dlq, body(n))
    assert len(dlq.peek(queues.sqs, queues.dlq, limit=5)) == 5
    assert len(dlq.peek(queues.sqs, queues.dlq)) == 12


def test_redrive_moves_envelopes_without_bookkeeping_and_leaves_the_rest(queues: Queues) -> None:
    queues.put(
        queues.dlq, body(1), {"event": attr("message.received"), "reason": attr("x"), "failures": attr("5")}
    )
    queues.put(queues.dlq, body(2))
    queues.put(queues.dlq, "not json", {"reason": attr("not a hub envelope")})
    report = dlq.redrive(queues.sqs, queues.dlq, queues.queue)
    assert report.redriven == 2
    assert [s["reason"].split(":")[0] for s in report.skipped] == ["not a hub envelope"]
    assert queues.bodies(queues.queue) == [body(1), body(2)]
    assert queues.bodies(queues.dlq) == ["not json"]  # left, and visible again
    moved = dlq.peek(queues.sqs, queues.queue)
    assert len(moved) == 2 and all(d.reason is None and d.failures is None for d in moved)


def test_redrive_of_an_empty_dlq_moves_nothing(queues: Queues) -> None:
    report = dlq.redrive(queues.sqs, queues.dlq, queues.queue)
    assert report.to_dict() == {"redriven": 0, "skipped": []}
    assert queues.bodies(queues.queue) == []
