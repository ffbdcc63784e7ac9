"""Large batch bodies: accepted whole at once, split after the answer by the batch splitter, outcomes at
GET /v1/batches/{id} — with in-memory hub, dedup and lake, real token checks."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.auth import Jwks, TokenVerifier
from gateway.config import GatewaySettings
from gateway.ingest import IngestService
from gateway.services import GatewayServices
from gateway.splitter.handler import BatchSplitter, backlog_pacer
from hub.events import Event
from lake.writer import LakeWriter
from tests.fakes.dedup import MemoryDedupStore
from tests.fakes.hub import MemoryHub
from tests.fakes.lake import MemoryCatalog, MemoryObjectStore
from tests.fakes.lake_reader import MemoryLakeReader
from tests.tokens import CLIENT_ID, ISSUER, TokenFactory

LIMIT = 5


def message(n: int) -> bytes:
    return (
        b"MSH|^~\\&|LAB|HOSP|LAKE|HOSP|20260101120000||ORU^R01|B%04d|P|2.5\r" % n
        + b"PID|1||%d^^^HOSP\rOBX|1|NM|GLU||%d|mg/dL\r" % (n, 90 + n)
    )


BAD = b"MSH|^~\\&|LAB|HOSP|LAKE|HOSP|20260101120000||||P|2.5\rPID|1\r"  # no MSH-9


class Stack:
    def __init__(self) -> None:
        self.tokens = TokenFactory()
        self.hub = MemoryHub()
        self.dedup = MemoryDedupStore()
        self.catalog = MemoryCatalog()
        self.objects = MemoryObjectStore()
        self.writer = LakeWriter(self.objects, self.catalog, self.hub.payloads)
        self.ingest = IngestService(self.dedup, self.hub, sync_batch_limit=LIMIT)
        self.splitter = BatchSplitter(self.ingest, self.hub, self.hub.payloads, chunk=4)
        self.reader = MemoryLakeReader(self.catalog.items, {})
        jwks = Jwks("https://idp.test/jwks.json", http=httpx.Client(transport=self.tokens.jwks_transport()))
        services = GatewayServices(
            settings=GatewaySettings(),
            verifier=TokenVerifier(
                jwks, ISSUER, CLIENT_ID, lambda t: {"custom:write": "hospital-b", "custom:read": "hospital-b"}
            ),
            ingest=self.ingest,
            reader=self.reader,
        )
        self.client = TestClient(create_app(services), raise_server_exceptions=False)
        self.auth = {"Authorization": f"Bearer {self.tokens.token()}"}

    def post(self, body: bytes) -> httpx.Response:
        headers = {"Content-Type": "application/hl7-v2", **self.auth}
        return self.client.post("/v1/messages", content=body, headers=headers)

    def run_workers(self) -> None:
        """Delivers what the hub holds: the splitter's queue, then everything to the lake writer."""
        for envelope in self.hub.drain("batch-splitter"):
            self.splitter.handle(envelope)
        for envelope in self.hub.drain("lake-writer"):
            self.writer.handle(envelope)
        for key, (body, _) in self.objects.objects.items():
            self.reader.objects[f"s3://{self.objects.bucket}/{key}"] = body


@pytest.fixture
def stack() -> Iterator[Stack]:
    yield Stack()


def test_a_large_batch_is_answered_at_once_and_split_afterwards(stack: Stack) -> None:
    body = b"".join(message(n) for n in range(12)) + message(3) + BAD  # one repeat, one unreadable
    response = stack.post(body)
    assert response.status_code == 202
    batch = response.json()["batch"]
    assert (batch["status"], batch["messages"]) == ("processing", 14)
    assert response.headers["Location"] == batch["location"] == f"/v1/batches/{batch['id']}"
    assert [e.event for e in stack.hub.published] == [Event.BATCH_RECEIVED]  # nothing split yet

    # Before the lake writer has seen it the batch is not visible; once seen, it is processing.
    assert stack.client.get(batch["location"], headers=stack.auth).status_code == 404
    for envelope in stack.hub.drain("lake-writer"):
        stack.writer.handle(envelope)
    pending = stack.client.get(batch["location"], headers=stack.auth).json()
    assert pending["batch"]["status"] == "processing" and pending["messages"] is None

    stack.run_workers()
    done = stack.client.get(batch["location"], headers=stack.auth).json()
    assert done["batch"]["status"] == "completed"
    assert (done["batch"]["accepted"], done["batch"]["duplicate"], done["batch"]["rejected"]) == (12, 1, 1)
    outcomes = done["messages"]
    assert [o["index"] for o in outcomes] == list(range(1, 15))
    assert outcomes[12]["status"] == "duplicate" and outcomes[12]["id"] == outcomes[3]["id"]
    assert outcomes[13]["status"] == "rejected" and outcomes[13]["error"]["field"] == "MSH-9"
    received = [e for e in stack.hub.published if e.event is Event.RECEIVED]
    assert len(received) == 12 and all(e.batch and e.batch["id"] == batch["id"] for e in received)
    assert {e.id for e in received} == {o["id"] for o in outcomes[:12]}
    # Each message is in the catalog; the batch item never shows in the message list.
    listed = stack.client.get("/v1/messages?limit=100", headers=stack.auth).json()["items"]
    assert len(listed) == 13 and batch["id"] not in {i["id"] for i in listed}  # 12 + the rejected one
    assert stack.client.get(f"/v1/messages/{batch['id']}", headers=stack.auth).status_code == 404
    raw = next(k for k in stack.objects.objects if k.startswith("batches/") and k.endswith(".hl7"))
    assert stack.objects.objects[raw][0].count(b"MSH|") == 14  # the body as received is in the lake


def test_a_redelivered_split_reports_the_same_messages_as_accepted_and_publishes_nothing_new(
    stack: Stack,
) -> None:
    stack.post(b"".join(message(n) for n in range(8)))
    envelope = stack.hub.drain("batch-splitter")[0]
    stack.splitter.handle(envelope)
    first = [e for e in stack.hub.published if e.event is Event.RECEIVED]
    stack.splitter.handle(envelope)  # SQS delivered it again
    again = [e for e in stack.hub.published if e.event is Event.RECEIVED]
    assert len(first) == len(again) == 8
    reports = [e.payload for e in stack.hub.published if e.event is Event.BATCH_COMPLETED]
    assert len(reports) == 2
    assert [m["status"] for m in reports[1]["messages"]] == ["accepted"] * 8
    assert [m["id"] for m in reports[1]["messages"]] == [m["id"] for m in reports[0]["messages"]]


def test_a_small_batch_is_still_answered_message_by_message(stack: Stack) -> None:
    response = stack.post(b"".join(message(n) for n in range(LIMIT)))
    assert response.status_code == 202
    result = response.json()
    assert result["batch"]["accepted"] == LIMIT and len(result["messages"]) == LIMIT
    assert stack.hub.queues["batch-splitter"] == type(stack.hub.queues["batch-splitter"])()


def test_a_batch_over_hl7_acks_is_answered_whole_never_split_later(stack: Stack) -> None:
    headers = {"Content-Type": "application/hl7-v2", "Accept": "application/hl7-v2", **stack.auth}
    body = b"".join(message(n) for n in range(LIMIT + 3))
    response = stack.client.post("/v1/messages", content=body, headers=headers)
    assert response.status_code == 202 and b"MSA|AA" in response.content
    assert len([e for e in stack.hub.published if e.event is Event.RECEIVED]) == LIMIT + 3


def test_the_splitter_waits_while_the_hub_is_behind() -> None:
    answers = iter([True, True, False])
    waits: list[bool] = []

    def behind() -> bool:
        value = next(answers)
        waits.append(value)
        return value

    class NoWait:
        def wait(self, seconds: float) -> bool:
            return False

    backlog_pacer(behind, NoWait())()  # type: ignore[arg-type]
    assert waits == [True, True, False]


def test_the_splitter_rests_after_each_chunk_for_its_duty_cycle(stack: Stack) -> None:
    rests: list[float] = []
    ticks = iter(float(t) for t in range(1000))
    splitter = BatchSplitter(
        stack.ingest,
        stack.hub,
        stack.hub.payloads,
        chunk=4,
        duty=0.25,
        clock=lambda: next(ticks),
        sleep=rests.append,
    )
    stack.post(b"".join(message(n) for n in range(10)))
    splitter.handle(stack.hub.drain("batch-splitter")[0])
    # Chunks of 4, 4, 2; each took one tick of work: rest 3 ticks after each but the last.
    assert rests == [3.0, 3.0]
