"""The envelope's wire format is a contract: other services and messages already in queues read it.

Every envelope shape the hub carries serializes to exactly these bytes and reads back to an equal
envelope; ``extra`` can add keys beside the core fields but never replace one.
"""

from __future__ import annotations

import json

import pytest

from hub.events import Envelope, Event, Format, PayloadRef

BASE = {
    "id": "01J0000000000000000000000A",
    "source": "lab-a",
    "received_at": "2026-01-02T03:04:05.678Z",
    "message_type": "ADT^A01",
    "control_id": "MSG00001",
}
RECEIVED = Envelope(
    event=Event.RECEIVED,
    format=Format.ER7,
    payload="MSH|^~\\&|A|B\rPID|1||ÄÖ",
    digest="ab12",
    flags=("missing-control-id",),
    batch={"id": "01B", "index": 2},
    **BASE,
)
BATCH_RECEIVED = Envelope(
    event=Event.BATCH_RECEIVED,
    format=Format.ER7,
    payload="FHS|^~\\&\rMSH|^~\\&",
    batch={"id": "01B", "count": 2, "declaredCounts": {"BTS": 2}, "problems": []},
    **{**BASE, "message_type": "batch", "control_id": ""},
)
ENVELOPES = {
    "received": RECEIVED,
    "claim": Envelope(
        event=Event.RECEIVED,
        format=Format.ER7,
        payload_ref=PayloadRef("bucket", "payloads/01J.hl7", 300000),
        digest="cd34",
        **BASE,
    ),
    "parsed": RECEIVED.derive(
        Event.PARSED,
        Format.JSON,
        payload={"id": "01J", "segments": [{"id": "MSH", "fields": {"1": "|"}}]},
        extra={"findings": [{"code": "escape-kept", "segment": "PID", "segmentIndex": 2, "field": "PID-5"}]},
    ),
    "failed": RECEIVED.derive(
        Event.FAILED,
        Format.JSON,
        error={"reason": "bad", "segment": "PID", "segmentIndex": 2, "field": "PID-3"},
    ),
    "converted": RECEIVED.derive(
        Event.CONVERTED,
        Format.FHIR,
        payload={"resourceType": "Bundle", "type": "transaction", "entry": []},
    ),
    "rejected": Envelope(
        event=Event.FAILED,
        format=Format.TEXT,
        payload="AAEC",
        error={"reason": "x", "stage": "gateway"},
        extra={"payloadEncoding": "base64"},
        **{**BASE, "message_type": "unknown", "control_id": ""},
    ),
    "batch_received": BATCH_RECEIVED,
    "batch_completed": BATCH_RECEIVED.derive(
        Event.BATCH_COMPLETED, Format.JSON, payload={"batch": {"id": "01B", "accepted": 2}}
    ),
}
# Written by the hand-built serializer before the collision guard: these bytes must not move.
WIRE = {
    "received": (
        '{"version":1,"event":"message.received","protocol":"hl7v2","id":"01J0000000000000000000000A"'
        ',"source":"lab-a","receivedAt":"2026-01-02T03:04:05.678Z","messageType":"ADT^A01"'
        ',"controlId":"MSG00001","format":"er7","digest":"ab12","flags":["missing-control-id"]'
        ',"error":null,"batch":{"id":"01B","index":2},"payload":"MSH|^~\\\\&|A|B\\rPID|1||ÄÖ"'
        ',"payloadRef":null}'
    ),
    "claim": (
        '{"version":1,"event":"message.received","protocol":"hl7v2","id":"01J0000000000000000000000A"'
        ',"source":"lab-a","receivedAt":"2026-01-02T03:04:05.678Z","messageType":"ADT^A01"'
        ',"controlId":"MSG00001","format":"er7","digest":"cd34","flags":[],"error":null,"batch":null'
        ',"payload":null,"payloadRef":{"bucket":"bucket","key":"payloads/01J.hl7","size":300000}}'
    ),
    "parsed": (
        '{"version":1,"event":"message.parsed","protocol":"hl7v2","id":"01J0000000000000000000000A"'
        ',"source":"lab-a","receivedAt":"2026-01-02T03:04:05.678Z","messageType":"ADT^A01"'
        ',"controlId":"MSG00001","format":"json","digest":"ab12","flags":["missing-control-id"]'
        ',"error":null,"batch":{"id":"01B","index":2},"payload":{"id":"01J","segments":[{"id":"MSH"'
        ',"fields":{"1":"|"}}]},"payloadRef":null,"findings":[{"code":"escape-kept","segment":"PID"'
        ',"segmentIndex":2,"field":"PID-5"}]}'
    ),
    "failed": (
        '{"version":1,"event":"message.failed","protocol":"hl7v2","id":"01J0000000000000000000000A"'
        ',"source":"lab-a","receivedAt":"2026-01-02T03:04:05.678Z","messageType":"ADT^A01"'
        ',"controlId":"MSG00001","format":"json","digest":"ab12","flags":["missing-control-id"]'
        ',"error":{"reason":"bad","segment":"PID","segmentIndex":2,"field":"PID-3"},"batch":{"id":"01B"'
        ',"index":2},"payload":null,"payloadRef":null}'
    ),
    "converted": (
        '{"version":1,"event":"message.converted","protocol":"hl7v2","id":"01J0000000000000000000000A"'
        ',"source":"lab-a","receivedAt":"2026-01-02T03:04:05.678Z","messageType":"ADT^A01"'
        ',"controlId":"MSG00001","format":"fhir","digest":"ab12","flags":["missing-control-id"]'
        ',"error":null,"batch":{"id":"01B","index":2},"payload":{"resourceType":"Bundle"'
        ',"type":"transaction","entry":[]},"payloadRef":null}'
    ),
    "rejected": (
        '{"version":1,"event":"message.failed","protocol":"hl7v2","id":"01J0000000000000000000000A"'
        ',"source":"lab-a","receivedAt":"2026-01-02T03:04:05.678Z","messageType":"unknown"'
        ',"controlId":"","format":"text","digest":null,"flags":[],"error":{"reason":"x"'
        ',"stage":"gateway"},"batch":null,"payload":"AAEC","payloadRef":null'
        ',"payloadEncoding":"base64"}'
    ),
    "batch_received": (
        '{"version":1,"event":"batch.received","protocol":"hl7v2","id":"01J0000000000000000000000A"'
        ',"source":"lab-a","receivedAt":"2026-01-02T03:04:05.678Z","messageType":"batch","controlId":""'
        ',"format":"er7","digest":null,"flags":[],"error":null,"batch":{"id":"01B","count":2'
        ',"declaredCounts":{"BTS":2},"problems":[]},"payload":"FHS|^~\\\\&\\rMSH|^~\\\\&"'
        ',"payloadRef":null}'
    ),
    "batch_completed": (
        '{"version":1,"event":"batch.completed","protocol":"hl7v2","id":"01J0000000000000000000000A"'
        ',"source":"lab-a","receivedAt":"2026-01-02T03:04:05.678Z","messageType":"batch","controlId":""'
        ',"format":"json","digest":null,"flags":[],"error":null,"batch":{"id":"01B","count":2'
        ',"declaredCounts":{"BTS":2},"problems":[]},"payload":{"batch":{"id":"01B","accepted":2}}'
        ',"payloadRef":null}'
    ),
}
CORE_KEYS = [
    "version",
    "event",
    "protocol",
    "id",
    "source",
    "receivedAt",
    "messageType",
    "controlId",
    "format",
    "digest",
    "flags",
    "error",
    "batch",
    "payload",
    "payloadRef",
]


def test_every_event_kind_is_covered() -> None:
    assert {e.event for e in ENVELOPES.values()} == set(Event)


@pytest.mark.parametrize("name", sorted(ENVELOPES))
def test_wire_bytes_are_unchanged(name: str) -> None:
    assert ENVELOPES[name].to_json() == WIRE[name]


@pytest.mark.parametrize("name", sorted(ENVELOPES))
def test_wire_round_trips_byte_identically(name: str) -> None:
    envelope = Envelope.from_json(WIRE[name])
    assert envelope == ENVELOPES[name]
    assert envelope.to_json() == WIRE[name]


@pytest.mark.parametrize("key", CORE_KEYS)
def test_extra_cannot_replace_a_core_field(key: str) -> None:
    with pytest.raises(ValueError, match=key):
        Envelope(event=Event.RECEIVED, format=Format.ER7, extra={key: "forged"}, **BASE)


def test_derive_with_a_colliding_extra_is_refused() -> None:
    with pytest.raises(ValueError, match="source"):
        RECEIVED.derive(Event.PARSED, Format.JSON, extra={"findings": [], "source": "lab-b"})


def test_python_field_names_are_not_collisions() -> None:
    # only the wire spelling collides: "received_at" is never written by to_dict
    envelope = Envelope(event=Event.RECEIVED, format=Format.ER7, extra={"received_at": "x"}, **BASE)
    assert json.loads(envelope.to_json())["receivedAt"] == BASE["received_at"]


def test_core_fields_on_the_wire_are_never_read_as_extra() -> None:
    envelope = Envelope.from_json(WIRE["rejected"])
    assert envelope.extra == {"payloadEncoding": "base64"}
    assert envelope.source == "lab-a"
