"""Each message's path: the steps every service records (GET /v1/messages/{id}/events) and one
OpenTelemetry trace from the front door through the hub, the staging worker and the lake writer."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.app import create_app
from gateway.auth import Jwks, TokenVerifier
from gateway.config import GatewaySettings
from gateway.ingest import IngestService
from gateway.message_events import events_view, since_receipt_ms
from gateway.services import GatewayServices
from hub import steps, telemetry
from hub.consumer import Batched, SqsConsumer
from hub.events import Envelope
from lake.writer import LakeWriter
from tests.factories import received_envelope
from tests.fakes.dedup import MemoryDedupStore
from tests.fakes.hub import MemoryHub
from tests.fakes.lake import MemoryCatalog, MemoryObjectStore
from tests.fakes.lake_reader import MemoryLakeReader
from tests.tokens import CLIENT_ID, ISSUER, TokenFactory
from workers.er7_staging.handler import Er7StagingHandler

MSG = b"MSH|^~\\&|LAB|HOSP_A|LAKE|AWS|20260101120000||ADT^A01^ADT_A01|CTRL-1|P|2.5.1\rPID|1||MRN1^^^HOSP_A\r"
SENDER_TRACE = "0af7651916cd43dd8448eb211c80319c"
SENDER_SPAN = "b7ad6b7169203331"
EVENT_KEYS = {
    "service",
    "instance",
    "event",
    "outcome",
    "reason",
    "receivedAt",
    "doneAt",
    "tries",
    "sinceReceiptMs",
}


class QueueOnHub:
    """SQS as the consumer sees it, for one MemoryHub queue: the published attributes (traceparent
    among them) come along, and a retry goes back to the queue with its `failures` attribute."""

    def __init__(self, hub: MemoryHub, name: str) -> None:
        self._hub, self._name = hub, name
        self._ids = itertools.count()
        self.retried: list[dict[str, Any]] = []

    def receive_message(self, **_: Any) -> dict[str, Any]:
        messages = [self._message(e.to_json(), _attributes(e)) for e in self._hub.drain(self._name)]
        messages += self.retried
        self.retried = []
        return {"Messages": messages}

    def _message(self, body: str, attributes: dict[str, Any]) -> dict[str, Any]:
        n = next(self._ids)
        return {"MessageId": f"m{n}", "ReceiptHandle": f"r{n}", "Body": body, "MessageAttributes": attributes}

    def send_message(self, MessageBody: str, MessageAttributes: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.retried.append(self._message(MessageBody, MessageAttributes))
        return {}

    def delete_message_batch(self, **_: Any) -> dict[str, Any]:
        return {}


def _attributes(envelope: Envelope) -> dict[str, Any]:
    return {k: {"DataType": "String", "StringValue": v} for k, v in envelope.attributes().items()}


class Pipeline:
    def __init__(self) -> None:
        self.tokens = TokenFactory()
        self.hub = MemoryHub()
        self.catalog = MemoryCatalog()
        self.reader = MemoryLakeReader(items=self.catalog.items)
        self.staging = Er7StagingHandler(self.hub, self.hub.payloads)
        self.writer = LakeWriter(MemoryObjectStore("lake"), self.catalog, self.hub.payloads)
        jwks = Jwks("https://idp.test/jwks.json", http=httpx.Client(transport=self.tokens.jwks_transport()))
        services = GatewayServices(
            settings=GatewaySettings(),
            verifier=TokenVerifier(jwks, ISSUER, CLIENT_ID, leeway=0),
            ingest=IngestService(MemoryDedupStore(), self.hub),
            reader=self.reader,
        )
        self.client = TestClient(create_app(services), raise_server_exceptions=False)

    def token(self, **claims: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.token(**claims)}"}

    def post(self, headers: dict[str, str] | None = None) -> str:
        response = self.client.post(
            "/v1/messages",
            content=MSG,
            headers={
                "Content-Type": "application/hl7-v2",
                **self.token(**{"custom:write": "hospital-a"}),
                **(headers or {}),
            },
        )
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def consume(self, queue: str, handler: Callable[[Envelope], None] | Batched, polls: int = 1) -> None:
        sqs = QueueOnHub(self.hub, queue)
        consumer = SqsConsumer(sqs, "url", handler, dlq_url="dlq", backoff_base=0, name=queue)
        for _ in range(polls):
            consumer.poll_once()

    def run_workers(self) -> None:
        """The received event into the lake, then staged, then the parsed event into the lake (a few
        milliseconds apart: steps are ordered by their millisecond timestamps)."""
        self.consume("lake-writer", Batched(self.writer.handle_batch))
        time.sleep(0.003)
        self.consume("er7-staging", Batched(self.staging.handle_batch))
        time.sleep(0.003)
        self.consume("lake-writer", Batched(self.writer.handle_batch))

    def events(self, message_id: str, read: str = "hospital-a") -> httpx.Response:
        response: httpx.Response = self.client.get(
            f"/v1/messages/{message_id}/events", headers=self.token(**{"custom:read": read})
        )
        return response


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use_tracer_provider(provider)
    yield exporter
    telemetry.use_tracer_provider(None)
    provider.shutdown()


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline()


def test_one_message_is_one_trace_from_the_sender_to_the_lake(
    pipeline: Pipeline, spans: InMemorySpanExporter
) -> None:
    sender = f"00-{SENDER_TRACE}-{SENDER_SPAN}-01"
    message_id = pipeline.post({"traceparent": sender})
    pipeline.run_workers()
    assert pipeline.catalog.items[message_id]["status"] == "parsed"

    finished = spans.get_finished_spans()
    by_name: dict[str, ReadableSpan] = {s.name: s for s in finished}
    assert set(by_name) == {
        "gateway accept",
        "er7-staging message.received",
        "lake-writer message.received",
        "lake-writer message.parsed",
    }
    assert {format(s.context.trace_id, "032x") for s in finished} == {SENDER_TRACE}

    def parent(name: str) -> int | None:
        span_parent = by_name[name].parent
        return span_parent.span_id if span_parent else None

    gateway = by_name["gateway accept"].context.span_id
    assert parent("gateway accept") == int(SENDER_SPAN, 16)
    assert parent("er7-staging message.received") == gateway
    assert parent("lake-writer message.received") == gateway
    assert parent("lake-writer message.parsed") == by_name["er7-staging message.received"].context.span_id


def test_without_a_sender_trace_the_gateway_starts_one(
    pipeline: Pipeline, spans: InMemorySpanExporter
) -> None:
    pipeline.post()
    pipeline.run_workers()
    finished = spans.get_finished_spans()
    assert len(finished) == 4 and len({s.context.trace_id for s in finished}) == 1
    root = [s for s in finished if s.parent is None]
    assert [s.name for s in root] == ["gateway accept"]


def test_the_events_route_returns_every_step_in_order(pipeline: Pipeline) -> None:
    message_id = pipeline.post()
    pipeline.run_workers()
    response = pipeline.events(message_id)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == message_id
    events = body["events"]
    assert all(set(e) == EVENT_KEYS for e in events)
    assert [(e["service"], e["event"], e["outcome"]) for e in events] == [
        ("gateway", "message.received", "accepted"),
        ("lake-writer", "message.received", "stored"),
        ("er7-staging", "message.received", "parsed"),
        ("lake-writer", "message.parsed", "stored"),
    ]
    assert [e["doneAt"] for e in events] == sorted(e["doneAt"] for e in events)
    since = [e["sinceReceiptMs"] for e in events]
    assert all(isinstance(ms, int) and ms >= 0 for ms in since) and since == sorted(since)
    assert all(e["tries"] == 1 and e["reason"] is None and ":" in e["instance"] for e in events)
    assert events[0]["receivedAt"] == pipeline.catalog.items[message_id]["receivedAt"]


def test_a_retried_handling_counts_its_tries(pipeline: Pipeline) -> None:
    pipeline.post()
    failures = iter([RuntimeError("store down")])

    def flaky(envelope: Envelope) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        pipeline.staging.handle(envelope)

    pipeline.consume("er7-staging", flaky, polls=2)
    (parsed,) = [e for e in pipeline.hub.published if e.event.value == "message.parsed"]
    staging = [s for s in steps.steps_of(parsed) if s["service"] == "er7-staging"]
    assert [s["tries"] for s in staging] == [2]


def test_a_failed_parse_names_its_reason(pipeline: Pipeline) -> None:
    pipeline.staging.handle(received_envelope("MSH|^~\\&|LAB"))
    (failed,) = pipeline.hub.published
    assert failed.event.value == "message.failed"
    (step,) = steps.steps_of(failed)
    assert step["service"] == "er7-staging" and step["outcome"] == "failed"
    assert step["reason"] == failed.error["reason"]


def test_another_sources_message_is_404_on_its_events(pipeline: Pipeline) -> None:
    message_id = pipeline.post()
    pipeline.run_workers()
    assert pipeline.events(message_id, read="hospital-b").status_code == 404
    assert pipeline.events("no-such-id").status_code == 404
    assert pipeline.events(message_id).status_code == 200  # the control


def test_steps_are_bounded_and_merged_once_each() -> None:
    def at(n: int) -> dict[str, Any]:
        stamp = f"2026-01-02T03:04:{n:02d}.000Z"
        return {
            "service": "s",
            "instance": "h:1",
            "event": "e",
            "outcome": "o",
            "reason": None,
            "receivedAt": stamp,
            "doneAt": stamp,
            "tries": 1,
        }

    many = [at(n) for n in range(30)]
    merged = steps.merged(many[15:], many[:20])
    assert merged == many[-steps.MAX_STEPS :]


def test_since_receipt_is_never_negative_and_in_milliseconds() -> None:
    assert since_receipt_ms("2026-01-02T03:04:05.000Z", "2026-01-02T03:04:06.250Z") == 1250
    assert since_receipt_ms("2026-01-02T03:04:05.000Z", "2026-01-02T03:04:04.000Z") == 0  # a clock behind
    item = {"id": "M", "receivedAt": "2026-01-02T03:04:05.000Z", "steps": []}
    assert events_view(item) == {"id": "M", "events": []}


def test_a_message_the_front_door_cannot_read_has_its_rejected_step(pipeline: Pipeline) -> None:
    response = pipeline.client.post(
        "/v1/messages",
        content=b"MSH|^~\\&|LAB",
        headers={"Content-Type": "application/hl7-v2", **pipeline.token(**{"custom:write": "hospital-a"})},
    )
    assert response.status_code == 400
    (failed,) = pipeline.hub.published
    (step,) = steps.steps_of(failed)
    assert (step["service"], step["event"], step["outcome"]) == ("gateway", "message.failed", "rejected")
    assert step["reason"] == failed.error["reason"]


@pytest.mark.parametrize(
    ("choice", "exporter"), [("console", "ConsoleSpanExporter"), ("otlp", "OTLPSpanExporter"), ("none", None)]
)
def test_the_exporter_is_the_one_otel_traces_exporter_names(choice: str, exporter: str | None) -> None:
    chosen = telemetry.span_exporter(choice)
    assert (type(chosen).__name__ if chosen is not None else None) == exporter
    assert telemetry.span_exporter("zipkin") is None  # not supported: none, with a warning
