"""Staging worker and lake writer on the in-memory hub: events in, lake objects and catalog out."""

from __future__ import annotations

import json

import pytest

from hub.events import Envelope, Event, Format
from lake import layout
from lake.writer import LakeWriter
from tests.factories import received_envelope
from tests.fakes.hub import MemoryHub, MemoryPayloadStore
from tests.fakes.lake import MemoryCatalog, MemoryObjectStore
from workers.er7_staging.handler import Er7StagingHandler

MSG = (
    "MSH|^~\\&|LAB|HOSP_A|LAKE|AWS|20260101120000||ADT^A01|CTRL-1|P|2.5.1\n"
    "PID|1||MRN1^^^H~SSN9^^^S||DOE^JOHN||19700101|M\n"
)


def received(payload: str = MSG, message_id: str = "01JTEST0000000000000000001") -> Envelope:
    return received_envelope(payload, message_id, source="hospital/a")


@pytest.fixture
def hub() -> MemoryHub:
    return MemoryHub()


def run_staging(hub: MemoryHub, envelope: Envelope) -> list[Envelope]:
    hub.publish(envelope)
    handler = Er7StagingHandler(hub, hub.payloads)
    for event in hub.drain("er7-staging"):
        handler.handle(event)
    return hub.published[1:]


def test_staging_publishes_parsed_document(hub: MemoryHub) -> None:
    [event] = run_staging(hub, received())
    assert event.event is Event.PARSED and event.format is Format.JSON
    assert event.attributes()["event"] == "message.parsed"
    doc = event.payload
    assert doc["id"] == event.id
    assert doc["header"]["messageType"] == "ADT^A01"
    pid = doc["segments"][1]
    assert pid["id"] == "PID"
    assert (
        pid["fields"]["3.1"] == "MRN1"
        and pid["fields"]["3[2].1"] == "SSN9"
        and pid["fields"]["5.2"] == "JOHN"
    )
    # parsed events go to the lake writer only, never back to staging
    assert hub.drain("er7-staging") == []
    assert [e.event for e in hub.drain("lake-writer")] == [Event.RECEIVED, Event.PARSED]


def test_staging_reports_precise_failure(hub: MemoryHub) -> None:
    bad = MSG.replace("PID|1", "pid|1")
    [event] = run_staging(hub, received(bad))
    assert event.event is Event.FAILED
    assert event.error["segmentIndex"] == 2 and "pid" in event.error["reason"]


def test_large_document_travels_by_reference(hub: MemoryHub) -> None:
    big = MSG + "".join(f"OBX|{i}|TX|||{'x' * 200}\r" for i in range(2000))
    hub.max_inline_bytes = 50_000
    [event] = run_staging(hub, received(big))
    assert event.payload is None and event.payload_ref is not None
    assert len(hub.published[0].to_json()) < 50_000  # the received event too


def writer() -> tuple[LakeWriter, MemoryObjectStore, MemoryCatalog, MemoryPayloadStore]:
    objects, catalog, payloads = MemoryObjectStore("lake"), MemoryCatalog(), MemoryPayloadStore()
    return LakeWriter(objects, catalog, payloads), objects, catalog, payloads


def test_lake_layout_and_catalog() -> None:
    lake, objects, catalog, _ = writer()
    envelope = received()
    lake.handle(envelope)
    raw_key = "raw/source=hospital_a/type=ADT_A01/date=2026-01-02/01JTEST0000000000000000001.hl7"
    assert objects.objects[raw_key][0] == MSG.encode()
    item = catalog.items[envelope.id]
    assert item["status"] == "received" and item["raw"] == f"s3://lake/{raw_key}"
    doc = {"id": envelope.id, "segments": []}
    lake.handle(envelope.derive(Event.PARSED, Format.JSON, payload=doc))
    parsed_key = raw_key.replace("raw/", "parsed/").replace(".hl7", ".json")
    assert json.loads(objects.objects[parsed_key][0]) == doc
    assert catalog.items[envelope.id]["status"] == "parsed"
    assert catalog.items[envelope.id]["parsed"] == f"s3://lake/{parsed_key}"


def test_events_in_any_order_and_repeated_end_the_same() -> None:
    envelope = received()
    parsed = envelope.derive(Event.PARSED, Format.JSON, payload={"id": envelope.id})
    failed = envelope.derive(Event.FAILED, Format.JSON, error={"reason": "x"})
    lake, _objects, catalog, _ = writer()
    for event in (parsed, envelope, envelope, failed, parsed):
        lake.handle(event)
    item = catalog.items[envelope.id]
    assert item["status"] == "parsed" and item["raw"] and item["parsed"] and "error" not in item


def test_failure_goes_to_errors_area() -> None:
    lake, objects, catalog, _ = writer()
    envelope = received()
    lake.handle(envelope.derive(Event.FAILED, Format.JSON, error={"reason": "bad", "field": "PID-3"}))
    lake.handle(envelope)
    item = catalog.items[envelope.id]
    assert item["status"] == "failed" and item["error"]["field"] == "PID-3"
    assert any(k.startswith("errors/source=hospital_a/") for k in objects.objects)


@pytest.mark.parametrize(
    ("value", "expected"), [("ADT^A01", "ADT_A01"), ("../../etc", "etc"), ("", "unknown"), ("a=b/c", "a_b_c")]
)
def test_key_parts_are_sanitized(value: str, expected: str) -> None:
    assert layout.sanitize(value) == expected


def test_envelope_round_trip_and_attribute_budget() -> None:
    envelope = received()
    assert Envelope.from_json(envelope.to_json()) == envelope
    assert len(envelope.attributes()) <= 10


def test_traceparent_is_an_attribute_within_sqs_limit_of_10() -> None:
    from dataclasses import replace

    from hub.consumer import FAILURES_ATTRIBUTE, REASON_ATTRIBUTE
    from hub.events import MAX_ATTRIBUTES

    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    envelope = replace(received(), traceparent=traceparent)
    attributes = envelope.attributes()
    assert attributes["traceparent"] == traceparent
    assert "traceparent" not in envelope.to_json()  # an attribute, not part of the body
    # a retried or dead-lettered message carries two more: still within SQS's 10
    assert len({**attributes, FAILURES_ATTRIBUTE: "1", REASON_ATTRIBUTE: "x"}) <= MAX_ATTRIBUTES == 10
    assert "traceparent" not in received().attributes()  # none when there is no trace


def test_rejected_raw_bytes_land_in_errors_area() -> None:
    import base64

    lake, objects, catalog, _ = writer()
    raw = b"MSH|^~\\&|broken\xff"
    envelope = Envelope(
        event=Event.FAILED, id="01JTEST0000000000000000009", source="hospital-a",
        received_at="2026-01-02T03:04:05.000Z", message_type="unknown", control_id="", format=Format.TEXT,
        payload=base64.b64encode(raw).decode(), error={"reason": "x", "field": "MSH-9"},
        extra={"payloadEncoding": "base64"},
    )  # fmt: skip
    lake.handle(envelope)
    key = "errors/source=hospital-a/type=unknown/date=2026-01-02/01JTEST0000000000000000009.hl7"
    assert objects.objects[key][0] == raw
    item = catalog.items[envelope.id]
    assert item["status"] == "failed" and item["raw"] == f"s3://lake/{key}"


def test_parser_crash_becomes_a_failure_without_leaking_text(hub: MemoryHub, monkeypatch, caplog) -> None:
    import workers.er7_staging.handler as handler_module

    def crash(text: str, *, message_id: str | None = None) -> dict:
        raise ValueError("value ZZSECRETNAME broke the parser")

    monkeypatch.setattr(handler_module, "parse_document", crash)
    [event] = run_staging(hub, received())
    assert event.event is Event.FAILED and "ValueError" in event.error["reason"]
    assert "parser crashed" in caplog.text and "ZZSECRETNAME" not in caplog.text
