"""What the front doors answer is counted by outcome, reason and (bounded) message type."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY

from gateway.ingest import IngestService, MediaType
from gateway.problems import Problem
from tests.fakes.dedup import MemoryDedupStore
from tests.fakes.hub import MemoryHub

MEDIA = MediaType("application/hl7-v2", None)


def message(message_type: str = "ORU^R01") -> bytes:
    control = uuid.uuid4().hex[:12]
    return f"MSH|^~\\&|LAB|HOSP|LAKE|HOSP|20260101120000||{message_type}|{control}|P|2.5\rPID|1||1\r".encode()


def count(door: str, outcome: str, reason: str, message_type: str) -> float:
    labels = {"door": door, "outcome": outcome, "reason": reason, "message_type": message_type}
    return REGISTRY.get_sample_value("hl7lake_ingest_messages_total", labels) or 0.0


def test_accepted_duplicate_and_rejected_are_counted_apart() -> None:
    door = f"test-{uuid.uuid4().hex[:6]}"
    ingest = IngestService(MemoryDedupStore(), MemoryHub(), door=door)
    body = message()
    ingest.ingest(body, MEDIA, "src")
    with pytest.raises(Problem):
        ingest.ingest(body, MEDIA, "src")
    with pytest.raises(Problem):
        ingest.ingest(b"PID|1||1\r", MEDIA, "src")
    assert count(door, "accepted", "", "ORU^R01") == 1
    assert count(door, "duplicate", "duplicate", "ORU^R01") == 1
    assert count(door, "rejected", "bad_message", "other") == 1


def test_a_batch_counts_each_message_and_types_stay_bounded() -> None:
    door = f"test-{uuid.uuid4().hex[:6]}"
    ingest = IngestService(MemoryDedupStore(), MemoryHub(), door=door)
    weird = "<script>^x"  # the sender's MSH-9 text never becomes a label of its own
    ingest.ingest(message() + message("ADT^A01") + message(weird), MEDIA, "src")
    assert count(door, "accepted", "", "ORU^R01") == 1
    assert count(door, "accepted", "", "ADT^A01") == 1
    assert count(door, "accepted", "", "other") == 1
