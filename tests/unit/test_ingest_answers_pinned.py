# ruff: noqa: E501  (pinned answers are compared as whole lines)
"""Pins every ACK and JSON answer of the ingest path byte for byte: one case per HL7 error code
branch (table 0357), each shape of a message outcome inside a batch, the JSON key order included."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway import ack
from gateway.ingest import IngestService, MediaType
from gateway.problems import Problem
from hub.ids import _ALPHABET
from tests.fakes.dedup import MemoryDedupStore
from tests.fakes.hub import MemoryHub

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
MEDIA = MediaType("application/hl7-v2", None)
_ID = re.compile("[" + re.escape(_ALPHABET) + "]{26}")

BODIES = {
    "msh9_missing": b"MSH|^~\\&|LAB|HOSP_A|LAKE|AWS|20260101120000|||C1|P|2.5.1\rPID|1\r",
    "msh91_missing": b"MSH|^~\\&|LAB|HOSP_A|LAKE|AWS|20260101120000||^A01|C1|P|2.3\rPID|1\r",
    "field_separator_missing": b"MSH\rPID|1\r",
    "first_segment_not_msh": b"PID|1\rMSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\r",
    "outside_any_message": b"FHS|^~\\&|S\rPID|1\rMSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\r",
    "after_fts": b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\rFTS|1\rPID|1\r",
    "second_bhs": b"BHS|^~\\&|S\rMSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\rBHS|^~\\&|S\r",
    "fhs_not_first": b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\rFHS|^~\\&|S\r",
    "bad_encoding_characters": b"MSH|^~|A|B|C|D|2026||ADT^A01|C1|P|2.5\r",
    "undecodable_byte": b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.3\rPID|1||\xff\r",
    "msh10_too_long": b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|" + b"K" * 300 + b"|P|2.5\r",
    "empty": b"   ",
}


def pinned(answer: Any) -> str:
    """The JSON text with each generated id replaced by ID1, ID2... in order of first appearance."""
    ids: dict[str, str] = {}
    return _ID.sub(lambda m: ids.setdefault(m.group(), f"ID{len(ids) + 1}"), json.dumps(answer))


def msg(control_id: bytes, pid: bytes = b"1") -> bytes:
    return (
        b"MSH|^~\\&|LAB|HOSP_A|LAKE|AWS|20260101120000||ADT^A01^ADT_A01|"
        + control_id
        + b"|P|2.5.1\rPID|"
        + pid
        + b"\r"
    )


def batch(*messages: bytes) -> bytes:
    return b"FHS|^~\\&|S\rBHS|^~\\&|S\r" + b"".join(messages) + b"BTS|%d\rFTS|1\r" % len(messages)


def problem_of(body: bytes) -> Problem:
    with pytest.raises(Problem) as raised:
        IngestService(MemoryDedupStore(), MemoryHub()).ingest(body, MEDIA, "hospital-a")
    return raised.value


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            "msh9_missing",
            "MSH|^~\\&|||||20260102030405+0000||ACK^^ACK|ACK1|P|2.5\rMSA|AE|C1\rERR||MSH^1^9^1|101^Required field missing^HL70357|E|bad_message|||message type (MSH-9) is missing",
        ),
        (
            "msh91_missing",
            "MSH|^~\\&|||||20260102030405+0000||ACK^^ACK|ACK1|P|2.5\rMSA|AE|C1\rERR||MSH^1^9^1^1|101^Required field missing^HL70357|E|bad_message|||message code (MSH-9.1) is missing",
        ),
        (
            "field_separator_missing",
            "MSH|^~\\&|||||20260102030405+0000||ACK^^ACK|ACK1|P|2.5\rMSA|AE\rERR||MSH^1^1^1|101^Required field missing^HL70357|E|bad_message|||field separator is missing",
        ),
        (
            "first_segment_not_msh",
            "MSH|^~\\&|||||20260102030405+0000||ACK^^ACK|ACK1|P|2.5\rMSA|AE\rERR||PID^1|100^Segment sequence error^HL70357|E|bad_message|||first segment is PID, expected MSH",
        ),
        (
            "outside_any_message",
            "MSH|^~\\&|||||20260102030405+0000||ACK^^ACK|ACK1|P|2.5\rMSA|AE\rERR||PID^1|100^Segment sequence error^HL70357|E|bad_message|||segment PID is outside any message (no MSH before it)",
        ),
        (
            "after_fts",
            "MSH|^~\\&|C|D|A|B|20260102030405+0000||ACK^A01^ACK|ACK1|P|2.5\rMSA|AE|C1\rERR||PID^1|100^Segment sequence error^HL70357|E|bad_message|||segment PID after FTS (end of file)",
        ),
        (
            "second_bhs",
            "MSH|^~\\&|||||20260102030405+0000||ACK^^ACK|ACK1|P|2.5\rMSA|AE\rERR||BHS^2|100^Segment sequence error^HL70357|E|bad_message|||a second BHS inside a batch (the previous batch has no BTS)",
        ),
        (
            "fhs_not_first",
            "MSH|^~\\&|C|D|A|B|20260102030405+0000||ACK^A01^ACK|ACK1|P|2.5\rMSA|AE|C1\rERR||FHS^1|207^Application internal error^HL70357|E|bad_message|||FHS must be the first segment",
        ),
        (
            "bad_encoding_characters",
            "MSH|^~\\&|||||20260102030405+0000||ACK^^ACK|ACK1|P|2.5\rMSA|AE|C1\rERR||MSH^1^2^1|102^Data type error^HL70357|E|bad_message|||encoding characters '\\S\\\\R\\' must be 4 characters (component, repetition, escape, subcomponent) or 5 with the truncation character",
        ),
        (
            "undecodable_byte",
            "MSH|^~\\&|C|D|A|B|20260102030405+0000||ACK^A01|ACK1|P|2.3\rMSA|AE|C1|byte 0xff at offset 47 is not valid UTF-8 (declared charset: none; set MSH-18 or the HTTP charset)\rERR|PID^1^3^102&Data type error&HL70357|PID^1^3^1|102^Data type error^HL70357|E|bad_message|||byte 0xff at offset 47 is not valid UTF-8 (declared charset: none; set MSH-18 or the HTTP charset)",
        ),
        (
            "msh10_too_long",
            "MSH|^~\\&|||||20260102030405+0000||ACK^^ACK|ACK1|P|2.5\rMSA|AE\rERR||MSH^1^10^1|102^Data type error^HL70357|E|bad_message|||MSH-10 is 300 characters long, over the limit of 199",
        ),
        (
            "empty",
            "MSH|^~\\&|||||20260102030405+0000||ACK^^ACK|ACK1|P|2.5\rMSA|AE\rERR|||207^Application internal error^HL70357|E|bad_message|||message is empty",
        ),
    ],
)
def test_ack_of_an_unreadable_message_is_pinned(case: str, expected: str) -> None:
    body = BODIES[case]
    answer = ack.acknowledge(ack.from_bytes(body), problem_of(body), control_id="ACK1", now=NOW)
    assert answer is not None and answer.text == expected


def test_single_message_answers_are_pinned() -> None:
    service = IngestService(MemoryDedupStore(), MemoryHub())
    assert pinned(service.ingest(msg(b"C1"), MEDIA, "src").to_dict()) == (
        '{"id": "ID1", "status": "accepted", "duplicate": false, "messageType": "ADT^A01", "controlId": "C1", "source": "src", "controlIdReused": false}'
    )
    assert pinned(service.ingest(msg(b"C1", b"2"), MEDIA, "src").to_dict()) == (
        '{"id": "ID1", "status": "accepted", "duplicate": false, "messageType": "ADT^A01", "controlId": "C1", "source": "src", "flags": ["controlIdReused"], "controlIdReused": true}'
    )
    assert pinned(service.ingest(msg(b""), MEDIA, "src").to_dict()) == (
        '{"id": "ID1", "status": "accepted", "duplicate": false, "messageType": "ADT^A01", "controlId": "", "source": "src", "flags": ["missing-control-id"], "controlIdReused": false}'
    )
    with pytest.raises(Problem) as raised:
        service.ingest(msg(b"C1"), MEDIA, "src")
    assert raised.value.status == 409
    assert pinned(raised.value.body()) == (
        '{"error": "duplicate", "message": "this message was already accepted", "duplicate": true, "id": "ID1", "status": "duplicate", "messageType": "ADT^A01", "controlId": "C1", "source": "src"}'
    )


def test_batch_answer_and_its_ack_are_pinned() -> None:
    service = IngestService(MemoryDedupStore(), MemoryHub())
    service.ingest(msg(b"C1"), MEDIA, "src")
    unreadable = b"MSH|^~\\&|LAB|HOSP_A|LAKE|AWS|20260101120000|||C9|P|2.5.1\rPID|1\r"
    body = batch(msg(b"B1"), msg(b"B2"), msg(b"B1"), msg(b"C1"), unreadable)
    result = service.ingest(body, MEDIA, "src")
    assert pinned(result.to_dict()) == (
        '{"batch": {"id": "ID1", "messages": 5, "accepted": 2, "duplicate": 2, "rejected": 1, "declaredCounts": {"BTS-1": 5, "FTS-1": 1}, "problems": []}, "messages": [{"index": 1, "id": "ID2", "status": "accepted", "duplicate": false, "messageType": "ADT^A01", "controlId": "B1", "source": "src", "controlIdReused": false}, {"index": 2, "id": "ID3", "status": "accepted", "duplicate": false, "messageType": "ADT^A01", "controlId": "B2", "source": "src", "controlIdReused": false}, {"index": 3, "id": "ID2", "messageType": "ADT^A01", "controlId": "B1", "source": "src", "status": "duplicate", "duplicate": true}, {"index": 4, "duplicate": true, "id": "ID4", "status": "duplicate", "messageType": "ADT^A01", "controlId": "C1", "source": "src"}, {"index": 5, "reason": "message type (MSH-9) is missing", "segment": "MSH", "segmentIndex": 1, "field": "MSH-9", "id": "ID5", "status": "rejected", "error": {"error": "bad_message", "message": "segment 1 (MSH), field MSH-9: message type (MSH-9) is missing", "reason": "message type (MSH-9) is missing", "segment": "MSH", "segmentIndex": 1, "field": "MSH-9", "id": "ID5"}}]}'
    )
    answer = ack.acknowledge(ack.from_bytes(body), None, result=result, control_id="ACK1", now=NOW)
    assert answer is not None and answer.text == (
        "MSH|^~\\&|||||20260102030405+0000||ACK^^ACK|ACK1|P|2.5\rMSA|AE\rERR|||101^Required field missing^HL70357|E|batch_rejected_messages|||1 of 5 messages of the batch were rejected (the others are accepted); first: message 5: message type (MSH-9) is missing"
    )


def test_large_batch_accepted_whole_is_pinned() -> None:
    service = IngestService(MemoryDedupStore(), MemoryHub(), sync_batch_limit=2)
    body = batch(msg(b"P1"), msg(b"P2"), msg(b"P3"))
    assert pinned(service.ingest(body, MEDIA, "src", split_later=True).to_dict()) == (
        '{"batch": {"id": "ID1", "status": "processing", "messages": 3, "declaredCounts": {"BTS-1": 3, "FTS-1": 1}, "problems": [], "location": "/v1/batches/ID1"}}'
    )


def test_members_of_a_retried_batch_are_pinned() -> None:
    service = IngestService(MemoryDedupStore(), MemoryHub())
    first = service.accept_members([msg(b"R1").decode()], "src", "BATCH1", (), {})
    again = service.accept_members([msg(b"R1").decode(), msg(b"R1").decode()], "src", "BATCH1", (), {})
    assert pinned([m.to_dict() for m in first + again]) == (
        '[{"index": 1, "id": "ID1", "status": "accepted", "duplicate": false, "messageType": "ADT^A01", "controlId": "R1", "source": "src", "controlIdReused": false}, {"index": 1, "id": "ID1", "messageType": "ADT^A01", "controlId": "R1", "source": "src", "status": "accepted", "duplicate": false}, {"index": 2, "id": "ID1", "messageType": "ADT^A01", "controlId": "R1", "source": "src", "status": "duplicate", "duplicate": true}]'
    )
