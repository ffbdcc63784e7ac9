"""`hl7lake hub --check`'s logic on hand-made topologies, and the workers' `handles` kept honest."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from hub.events import Attr, Envelope, Event, Format
from hub.live_topology import LiveSubscription, LiveTopology
from hub.topology import BATCH_SPLITTER, ER7_STAGING, LAKE_WRITER, SUBSCRIPTIONS
from hub.wiring_check import PUBLISHED, check, sample_envelope

PREFIX = "t"


def live(worker: str, policy: dict[str, Any] | None, scope: str = "MessageAttributes") -> LiveSubscription:
    queue = f"{PREFIX}-{worker}"
    return LiveSubscription(
        subscription_arn=f"arn:aws:sns:us-east-1:1:{PREFIX}-hub:{worker}",
        protocol="sqs",
        endpoint=f"arn:aws:sqs:us-east-1:1:{queue}",
        queue=queue,
        queue_url=f"http://sqs/{queue}",
        filter_policy=policy,
        filter_policy_scope=scope,
        raw_delivery=True,
        dlq=f"{queue}-dlq",
        dlq_url=f"http://sqs/{queue}-dlq",
        max_receives=5,
    )


def as_designed() -> LiveTopology:
    return LiveTopology("arn:topic", [live(s.name, s.filter_policy) for s in SUBSCRIPTIONS.values()])


def test_the_designed_wiring_passes_and_routes_each_event_to_its_workers() -> None:
    report = check(as_designed(), PREFIX)
    assert report.passed, report.problems
    routes = {(r.event, r.format): set(r.receivers) for r in report.routes}
    assert routes[(Event.RECEIVED, Format.ER7)] == {"t-er7-staging", "t-lake-writer"}
    assert routes[(Event.BATCH_RECEIVED, Format.ER7)] == {"t-batch-splitter", "t-lake-writer"}
    # not the staging worker; the FHIR worker, for a type it maps (the sample is an ADT^A01)
    assert routes[(Event.PARSED, Format.JSON)] == {"t-lake-writer", "t-fhir-r4"}
    assert routes[(Event.CONVERTED, Format.FHIR)] == {"t-lake-writer"}
    assert routes[(Event.FAILED, Format.TEXT)] == {"t-lake-writer"}


def test_a_worker_receiving_what_it_does_not_handle_fails_naming_it() -> None:
    topology = as_designed()
    wrong = live("er7-staging", {Attr.EVENT.value: [Event.PARSED.value]})
    topology.subscriptions.append(replace(wrong, subscription_arn="arn:second"))
    report = check(topology, PREFIX)
    assert not report.passed
    assert any("t-er7-staging receives message.parsed" in p and "wrong message" in p for p in report.problems)


def test_a_queue_no_worker_reads_fails_and_so_does_a_filter_matching_nothing() -> None:
    topology = as_designed()
    topology.subscriptions.append(live("audit", {Attr.EVENT.value: [{"prefix": "batch."}]}))
    nothing = live("lake-writer", {Attr.EVENT.value: ["no.such.event"]})
    topology.subscriptions.append(replace(nothing, subscription_arn="arn:second"))
    report = check(topology, PREFIX)
    assert any("t-audit receives batch.received" in p and "no hl7lake worker" in p for p in report.problems)
    assert "t-lake-writer receives no event the code publishes" in report.problems
    assert not any("t-batch-splitter" in p or "t-er7-staging" in p for p in report.problems)


def test_an_event_reaching_nobody_fails() -> None:
    subs = [live(s.name, s.filter_policy) for s in SUBSCRIPTIONS.values() if s is not LAKE_WRITER]
    report = check(LiveTopology("arn:topic", subs), PREFIX)
    # (message.parsed of a mapped type still reaches the FHIR worker)
    assert "message.converted (fhir) reaches no subscriber" in report.problems


def test_a_subscription_without_policy_receives_everything_and_body_scope_reads_the_envelope() -> None:
    report = check(LiveTopology("arn:topic", [live("lake-writer", None)]), PREFIX)
    assert all(r.receivers == ("t-lake-writer",) for r in report.routes)
    body_scoped = live("batch-splitter", {"event": [Event.BATCH_RECEIVED.value]}, scope="MessageBody")
    report = check(LiveTopology("arn:topic", [body_scoped]), PREFIX)
    assert [r.event for r in report.routes if r.receivers] == [Event.BATCH_RECEIVED]


def test_samples_carry_every_attribute_the_publisher_sets() -> None:
    for event, format in PUBLISHED:
        attributes = sample_envelope(event, format).attributes()
        assert set(attributes) == set(Attr) and all(attributes.values())


# --- each worker's `handles` says what its handler acts on -----------------------------------------


def test_declared_handles_agree_with_the_designed_filter_policies() -> None:
    for sub in SUBSCRIPTIONS.values():
        delivered = {(e, f) for e, f in PUBLISHED if sub.matches(sample_envelope(e, f).attributes())}
        handled = {(e, f) for e, f in PUBLISHED if sub.handles_event(e, f)}
        assert delivered == handled, sub.name
    assert ER7_STAGING.handles == {Event.RECEIVED} and ER7_STAGING.handles_formats == {Format.ER7}
    assert LAKE_WRITER.handles == set(Event)
    assert BATCH_SPLITTER.handles == {Event.BATCH_RECEIVED}


class Acted(Exception):
    """Raised by a fake the moment a handler starts working on an event."""


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[Envelope] = []

    def publish(self, envelope: Envelope) -> str:
        self.published.append(envelope)
        return "id"

    def publish_batch(self, envelopes: Any) -> list[Exception | None]:
        self.published.extend(envelopes)
        return [None] * len(envelopes)


class NoPayloads:
    def put(self, key: str, body: bytes) -> Any:
        raise AssertionError("payloads are inline in these tests")

    def get(self, ref: Any) -> bytes:
        raise AssertionError("payloads are inline in these tests")


ER7 = "MSH|^~\\&|LAB|HOSP_A|LAKE|AWS|20260101120000||ADT^A01|CTRL-1|P|2.5.1\rPID|1||MRN1\r"


def with_payload(event: Event, format: Format) -> Envelope:
    envelope = sample_envelope(event, format)
    if format is Format.ER7:
        return replace(envelope, payload=ER7)
    if format is Format.TEXT:
        return replace(envelope, payload="TVNI", error={"reason": "bad"}, extra={"payloadEncoding": "base64"})
    if event is Event.FAILED:
        return replace(envelope, error={"reason": "bad"})
    return replace(envelope, payload={"batch": {"accepted": 1}} if event is Event.BATCH_COMPLETED else {})


@pytest.mark.parametrize(("event", "format"), PUBLISHED)
def test_the_staging_worker_acts_on_exactly_what_it_declares(event: Event, format: Format) -> None:
    from workers.er7_staging.handler import Er7StagingHandler

    publisher = RecordingPublisher()
    outcomes = Er7StagingHandler(publisher, NoPayloads()).handle_batch([with_payload(event, format)])
    assert outcomes == [None]
    assert bool(publisher.published) is ER7_STAGING.handles_event(event, format)


@pytest.mark.parametrize(("event", "format"), PUBLISHED)
def test_the_fhir_worker_acts_on_exactly_what_it_declares(event: Event, format: Format) -> None:
    from hub.topology import FHIR_R4
    from workers.fhir.handler import FhirHandler

    publisher = RecordingPublisher()
    outcomes = FhirHandler(publisher, NoPayloads()).handle_batch([with_payload(event, format)])
    assert outcomes == [None]
    assert bool(publisher.published) is FHIR_R4.handles_event(event, format)


@pytest.mark.parametrize(("event", "format"), PUBLISHED)
def test_the_batch_splitter_acts_on_exactly_what_it_declares(event: Event, format: Format) -> None:
    from gateway.splitter.handler import BatchSplitter

    class ActingIngest:
        def accept_members(self, *args: Any, **kwargs: Any) -> Any:
            raise Acted

        def flush(self) -> None:
            raise Acted

    splitter = BatchSplitter(ActingIngest(), RecordingPublisher(), NoPayloads())  # type: ignore[arg-type]
    envelope = replace(with_payload(event, format), payload=ER7 + ER7.replace("CTRL-1", "CTRL-2"))
    if BATCH_SPLITTER.handles_event(event, format):
        with pytest.raises(Acted):
            splitter.handle(envelope)
    else:
        splitter.handle(envelope)  # returns without touching the ingest path


@pytest.mark.parametrize(("event", "format"), PUBLISHED)
def test_the_lake_writer_acts_on_every_event_it_declares(event: Event, format: Format) -> None:
    from lake.writer import LakeWriter

    class Objects:
        bucket = "lake"

        def __init__(self) -> None:
            self.keys: list[str] = []

        def put(self, key: str, body: bytes, content_type: str) -> None:
            self.keys.append(key)

    class Catalog:
        def __init__(self) -> None:
            self.items: list[Any] = []

        def __getattr__(self, name: str) -> Any:
            if name == "record_many":
                return lambda items: [self.items.extend(items)] and [None] * len(items)
            return lambda *args: self.items.append((name, args))

    objects, catalog = Objects(), Catalog()
    writer = LakeWriter(objects, catalog, NoPayloads())  # type: ignore[arg-type]
    try:
        assert LAKE_WRITER.handles_event(event, format)
        assert writer.handle_batch([with_payload(event, format)]) == [None]
    finally:
        writer.close()
    assert objects.keys and catalog.items
