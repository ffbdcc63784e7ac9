"""Dedup completions in batches: fewer calls, the same answers, nothing doubled when one is lost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from gateway.completions import DeferredCompletions
from gateway.dedup import COMPLETED, INPROGRESS, ClaimState, DynamoDedupStore, Fingerprint
from gateway.ingest import IngestService, MediaType
from gateway.problems import Problem
from tests.fakes.dedup import MemoryDedupStore
from tests.fakes.hub import MemoryHub
from tests.unit.test_dedup_protocol import create_dedup_table

MEDIA = MediaType("application/hl7-v2", None)


def message(control_id: str) -> bytes:
    return f"MSH|^~\\&|LAB|HOSP|LAKE|HOSP|20260101120000||ORU^R01|{control_id}|P|2.5\rPID|1||1\r".encode()


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dynamo() -> Iterator[tuple[DynamoDedupStore, list[str], Any, str]]:
    """A DynamoDB dedup store on moto, with the operations it calls recorded in order."""
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        table = create_dedup_table(ddb)
        calls: list[str] = []
        ddb.meta.events.register("before-call", lambda model, **_: calls.append(model.name))
        yield DynamoDedupStore(ddb, table, 3600, 15), calls, ddb, table


def status_of(ddb: Any, table: str, key: str) -> str:
    return str(ddb.get_item(TableName=table, Key={"key": {"S": key}})["Item"]["status"]["S"])


def test_sixty_completions_take_three_batch_writes(
    dynamo: tuple[DynamoDedupStore, list[str], Any, str],
) -> None:
    store, calls, ddb, table = dynamo
    deferred = DeferredCompletions(store, linger_seconds=60)
    claims = [
        deferred.claim(Fingerprint("src", f"C{i}", f"d{i}"), f"id-{i}", "2026-01-01T00:00:00Z")
        for i in range(60)
    ]
    calls.clear()
    for claim in claims:
        deferred.complete(claim)
    assert calls == [] or set(calls) == {"BatchWriteItem"}  # full batches of 25 may go at once
    deferred.flush()
    assert calls == ["BatchWriteItem"] * 3
    assert deferred.pending == 0
    assert {status_of(ddb, table, c.key) for c in claims} == {COMPLETED}
    deferred.close()


def test_a_resend_while_its_completion_waits_is_a_duplicate_with_the_first_id() -> None:
    deferred = DeferredCompletions(MemoryDedupStore(), linger_seconds=60)
    ingest = IngestService(deferred, MemoryHub())
    first = ingest.ingest(message("C1"), MEDIA, "src").to_dict()
    assert deferred.pending == 1  # not written yet: the resend is answered from this process
    with pytest.raises(Problem) as resent:
        ingest.ingest(message("C1"), MEDIA, "src")
    assert resent.value.status == 409 and resent.value.details["id"] == first["id"]
    ingest.close()
    assert deferred.pending == 0


def test_the_background_thread_writes_after_the_linger() -> None:
    store = MemoryDedupStore()
    deferred = DeferredCompletions(store, linger_seconds=0.05)
    claim = deferred.claim(Fingerprint("src", "C1", "d1"), "id-1", "2026-01-01T00:00:00Z")
    deferred.complete(claim)
    deadline = time.monotonic() + 5
    while store.records[claim.key]["status"] != COMPLETED:
        assert time.monotonic() < deadline, "the completion was never written"
        time.sleep(0.01)
    assert deferred.pending == 0
    deferred.close()


def test_a_lost_completion_is_taken_over_under_the_same_id() -> None:
    """The front door dies before its batch is written: the resend republishes the same message."""
    clock = Clock()
    crashed = DeferredCompletions(MemoryDedupStore(in_progress_seconds=15, clock=clock), linger_seconds=60)
    hub = MemoryHub()
    first = IngestService(crashed, hub).ingest(message("C1"), MEDIA, "src").to_dict()
    # A new process over the same table; the old one's pending completion is gone with it.
    store = crashed._store
    restarted = IngestService(DeferredCompletions(store, linger_seconds=60), hub)
    assert store.records  # the claim is there, in progress
    assert next(iter(store.records.values()))["status"] == INPROGRESS
    clock.now += 16
    again = restarted.ingest(message("C1"), MEDIA, "src").to_dict()
    assert again["id"] == first["id"] and again["duplicate"] is False
    assert [e.id for e in hub.published] == [first["id"], first["id"]]  # the lake applies it once


def test_a_failing_batch_write_leaves_the_claims_to_be_taken_over() -> None:
    clock = Clock()
    store = MemoryDedupStore(in_progress_seconds=15, clock=clock)
    deferred = DeferredCompletions(store, linger_seconds=60)
    claim = deferred.claim(Fingerprint("src", "C1", "d1"), "id-1", "2026-01-01T00:00:00Z")
    deferred.complete(claim)
    store.unavailable = True
    deferred.flush()  # logged, given up: no exception reaches the sender, who already has the answer
    store.unavailable = False
    assert deferred.pending == 0
    assert store.records[claim.key]["status"] == INPROGRESS
    clock.now += 16
    again = deferred.claim(Fingerprint("src", "C1", "d1"), "id-other", "2026-01-02T00:00:00Z")
    assert again.state is ClaimState.NEW and again.resumed and again.message_id == "id-1"


def test_linger_zero_writes_at_once(dynamo: tuple[DynamoDedupStore, list[str], Any, str]) -> None:
    store, calls, ddb, table = dynamo
    deferred = DeferredCompletions(store, linger_seconds=0)
    claim = deferred.claim(Fingerprint("src", "C1", "d1"), "id-1", "2026-01-01T00:00:00Z")
    calls.clear()
    deferred.complete(claim)
    assert calls == ["BatchWriteItem"]
    assert status_of(ddb, table, claim.key) == COMPLETED
    assert deferred.pending == 0
