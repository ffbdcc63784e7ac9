"""The dedup protocol, on the in-memory fake and on DynamoDB (moto in process) side by side.

The crash the operator saw: the front door dies between publishing a message and completing its
claim. The sender's retry must end with exactly one message in the lake, under one id.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from gateway.dedup import ClaimState, DedupStore, DynamoDedupStore, Fingerprint
from gateway.ingest import IngestService, MediaType
from gateway.problems import Problem
from hub.events import Envelope, Event
from lake.writer import LakeWriter
from tests.fakes.dedup import MemoryDedupStore
from tests.fakes.hub import MemoryHub
from tests.fakes.lake import MemoryCatalog, MemoryObjectStore

MSG = b"MSH|^~\\&|LAB|HOSP|LAKE|HOSP|20260101120000||ORU^R01|CTRL-42|P|2.5\rPID|1||12345^^^HOSP\r"
MEDIA = MediaType("application/hl7-v2", None)
IN_PROGRESS_SECONDS = 15


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class FrontDoorCrashed(BaseException):
    """Stands in for kill -9: nothing after the crash point runs, no handler catches it."""


def create_dedup_table(ddb: Any) -> str:
    """A dedup table as the stacks define it (hash key `key`), uniquely named; its name."""
    table = f"dedup-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return table


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest, clock: Clock) -> Iterator[DedupStore]:
    if request.param == "memory":
        yield MemoryDedupStore(in_progress_seconds=IN_PROGRESS_SECONDS, clock=clock)
        return
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        table = create_dedup_table(ddb)
        yield DynamoDedupStore(ddb, table, 7 * 24 * 3600, IN_PROGRESS_SECONDS, clock=clock)


def crash_after_publish(_: Envelope) -> None:
    raise FrontDoorCrashed


def lake_of(hub: MemoryHub) -> MemoryCatalog:
    """Everything the hub carried, applied by the lake writer (which is idempotent by id)."""
    catalog = MemoryCatalog()
    writer = LakeWriter(MemoryObjectStore(), catalog, hub.payloads)
    for envelope in hub.published:
        writer.handle(envelope)
    return catalog


A = Fingerprint("src", "CTL-1", "digest-a")


def test_new_then_duplicate(store: DedupStore) -> None:
    first = store.claim(A, "id-1", "t1")
    assert (first.state, first.message_id, first.resumed) == (ClaimState.NEW, "id-1", False)
    store.complete(first)
    again = store.claim(A, "id-2", "t2")
    assert (again.state, again.message_id, again.received_at) == (ClaimState.DUPLICATE, "id-1", "t1")


def test_a_live_claim_answers_in_progress_with_its_id(store: DedupStore, clock: Clock) -> None:
    store.claim(A, "id-1", "t1")
    clock.now += IN_PROGRESS_SECONDS - 1
    held = store.claim(A, "id-2", "t2")
    assert (held.state, held.message_id) == (ClaimState.IN_PROGRESS, "id-1")


def test_a_stale_claim_is_taken_over_under_its_own_id_and_time(store: DedupStore, clock: Clock) -> None:
    store.claim(A, "id-1", "t1")
    clock.now += IN_PROGRESS_SECONDS + 1
    taken = store.claim(A, "id-2", "t2")
    assert (taken.state, taken.message_id, taken.received_at, taken.resumed) == (
        ClaimState.NEW,
        "id-1",
        "t1",
        True,
    )
    # The taker now holds it: a third request waits.
    assert store.claim(A, "id-3", "t3").state is ClaimState.IN_PROGRESS
    store.complete(taken)
    assert store.claim(A, "id-4", "t4").state is ClaimState.DUPLICATE


def test_an_abandoned_claim_is_taken_over_at_once_under_its_id(store: DedupStore) -> None:
    first = store.claim(A, "id-1", "t1")
    store.abandon(first)
    retry = store.claim(A, "id-2", "t2")
    assert (retry.state, retry.message_id, retry.resumed) == (ClaimState.NEW, "id-1", True)


def test_abandon_does_not_touch_a_completed_record(store: DedupStore) -> None:
    first = store.claim(A, "id-1", "t1")
    store.complete(first)
    store.abandon(first)
    assert store.claim(A, "id-2", "t2").state is ClaimState.DUPLICATE


def test_an_expired_record_is_new_again(store: DedupStore, clock: Clock) -> None:
    store.complete(store.claim(A, "id-1", "t1"))
    clock.now += 8 * 24 * 3600
    fresh = store.claim(A, "id-2", "t2")
    assert (fresh.state, fresh.message_id, fresh.resumed) == (ClaimState.NEW, "id-2", False)


def test_a_reused_control_id_with_other_content_is_a_new_message_flagged(store: DedupStore) -> None:
    store.complete(store.claim(A, "id-1", "t1"))
    other = Fingerprint("src", "CTL-1", "digest-b")
    reused = store.claim(other, "id-2", "t2")
    assert (reused.state, reused.message_id, reused.control_id_reused) == (ClaimState.NEW, "id-2", True)
    store.complete(reused)
    # Each is its own message from then on: both resends are duplicates of the right one.
    again = store.claim(other, "id-3", "t3")
    assert (again.state, again.message_id, again.control_id_reused) == (ClaimState.DUPLICATE, "id-2", True)
    first = store.claim(A, "id-4", "t4")
    assert (first.state, first.message_id, first.control_id_reused) == (ClaimState.DUPLICATE, "id-1", False)
    # The same control id from another source is unrelated.
    elsewhere = store.claim(Fingerprint("other", "CTL-1", "digest-b"), "id-5", "t5")
    assert (elsewhere.state, elsewhere.control_id_reused) == (ClaimState.NEW, False)


def test_an_empty_control_id_is_claimed_by_content_never_flagged_reused(store: DedupStore) -> None:
    # no `ctl#src#` record: every message without MSH-10 would otherwise look like a reused control id
    first = store.claim(Fingerprint("src", "", "digest-a"), "id-1", "t1")
    assert (first.state, first.key, first.control_id_reused) == (ClaimState.NEW, "src#digest-a", False)
    store.complete(first)
    other = store.claim(Fingerprint("src", "", "digest-b"), "id-2", "t2")
    assert (other.state, other.key, other.control_id_reused) == (ClaimState.NEW, "src#digest-b", False)
    again = store.claim(Fingerprint("src", "", "digest-a"), "id-3", "t3")
    assert (again.state, again.message_id, again.control_id_reused) == (ClaimState.DUPLICATE, "id-1", False)


def test_crash_between_publish_and_completion_never_doubles(store: DedupStore, clock: Clock) -> None:
    hub = MemoryHub()
    crashing = IngestService(store, hub, after_publish=crash_after_publish)
    with pytest.raises(FrontDoorCrashed):
        crashing.ingest(MSG, MEDIA, "hospital-a")
    assert len(hub.published) == 1  # it was in the hub when the front door died
    first_id = hub.published[0].id

    restarted = IngestService(store, hub)
    with pytest.raises(Problem) as blocked:  # the sender retries at once
        restarted.ingest(MSG, MEDIA, "hospital-a")
    problem = blocked.value
    assert (problem.status, problem.code, problem.headers["Retry-After"]) == (503, "in_progress", "2")
    assert problem.details["id"] == first_id
    assert "nothing was stored" not in problem.message and "may already be in the hub" in problem.message

    clock.now += IN_PROGRESS_SECONDS + 1
    accepted = restarted.ingest(MSG, MEDIA, "hospital-a").to_dict()
    assert accepted["id"] == first_id
    with pytest.raises(Problem) as duplicate:
        restarted.ingest(MSG, MEDIA, "hospital-a")
    assert (duplicate.value.status, duplicate.value.details["id"]) == (409, first_id)

    received = [e for e in hub.published if e.event is Event.RECEIVED]
    assert {(e.id, e.received_at) for e in received} == {(first_id, hub.published[0].received_at)}
    assert list(lake_of(hub).items) == [first_id]


class FlakyHub(MemoryHub):
    """Publishes, then reports a failure: a publish whose answer timed out."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lose_answers = 0

    def publish(self, envelope: Envelope) -> str:
        message_id = super().publish(envelope)
        if self.lose_answers:
            self.lose_answers -= 1
            from hub.publisher import HubUnavailable

            raise HubUnavailable("hub unavailable: read timeout")
        return message_id


def test_a_publish_that_timed_out_but_arrived_is_not_doubled_by_the_retry(store: DedupStore) -> None:
    hub = FlakyHub()
    hub.lose_answers = 1
    service = IngestService(store, hub)
    with pytest.raises(Problem) as failed:
        service.ingest(MSG, MEDIA, "hospital-a")
    assert failed.value.status == 503 and "Retry-After" in failed.value.headers
    accepted = service.ingest(MSG, MEDIA, "hospital-a").to_dict()  # the sender's retry, at once
    assert accepted["status"] == "accepted"
    assert {e.id for e in hub.published} == {accepted["id"]}
    assert list(lake_of(hub).items) == [accepted["id"]]


def test_a_publish_that_failed_lets_the_retry_through_at_once(store: DedupStore) -> None:
    hub = MemoryHub()
    hub.fail_next = 1
    service = IngestService(store, hub)
    with pytest.raises(Problem) as failed:
        service.ingest(MSG, MEDIA, "hospital-a")
    assert failed.value.status == 503
    accepted = service.ingest(MSG, MEDIA, "hospital-a").to_dict()
    assert accepted["status"] == "accepted" and len(hub.published) == 1


def test_dynamodb_claim_is_one_round_trip_on_conflict(clock: Clock) -> None:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        table = create_dedup_table(ddb)
        calls: list[str] = []
        ddb.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
        store = DynamoDedupStore(ddb, table, 3600, IN_PROGRESS_SECONDS, clock=clock)
        first = store.claim(A, "id-1", "t1")
        assert calls == ["PutItem"]  # a new message: one call
        store.complete(first)
        calls.clear()
        assert store.claim(A, "id-2", "t2").state is ClaimState.DUPLICATE
        assert calls == ["PutItem"]  # a duplicate: one call, the record comes back with the refusal


class RejectingHub(MemoryHub):
    def publish(self, envelope: Envelope) -> str:
        from hub.publisher import HubRejected

        raise HubRejected("hub rejected the event: InvalidParameter")


def test_a_hub_rejection_is_a_500_with_an_error_id_never_a_503(store: DedupStore) -> None:
    service = IngestService(store, RejectingHub())
    with pytest.raises(Problem) as refused:
        service.ingest(MSG, MEDIA, "hospital-a")
    assert refused.value.status == 500 and refused.value.details["errorId"]
    assert "Retry-After" not in refused.value.headers
    # The claim was let go: once the defect is fixed, the sender's retry goes through.
    retried = IngestService(store, MemoryHub()).ingest(MSG, MEDIA, "hospital-a")
    assert retried.to_dict()["status"] == "accepted"
