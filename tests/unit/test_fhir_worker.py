"""The FHIR R4 subscriber on the in-memory hub: parsed events in, `message.converted` (or a located
`message.failed`, stage fhir) out, and the lake writer storing the Bundle beside the parsed document."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from hub.events import Envelope, Event, Format
from hub.topology import FHIR_R4, SUBSCRIPTIONS
from lake import layout
from lake.writer import LakeWriter
from tests.factories import received_envelope
from tests.fakes.hub import MemoryHub
from tests.fakes.lake import MemoryCatalog, MemoryObjectStore
from workers.er7_staging.handler import Er7StagingHandler
from workers.fhir import handler as fhir_handler
from workers.fhir.handler import FhirHandler
from workers.fhir.mapping import MappingError

ADT = (
    "MSH|^~\\&|ADT|HOSP_A|LAKE|AWS|20260101120000||ADT^A01|CTRL-1|P|2.5.1\r"
    "PID|1||MRN1^^^HOSP_A||DOE^JOHN||19700102|M\r"
)
MESSAGE_ID = "01JFHIR000000000000000001"


def staged(hub: MemoryHub, er7: str = ADT, message_type: str = "ADT^A01") -> None:
    """A received message parsed by the staging worker: its events are in the hub's queues."""
    received = replace(received_envelope(er7, MESSAGE_ID), message_type=message_type)
    hub.publish(received)
    staging = Er7StagingHandler(hub, hub.payloads)
    for event in hub.drain("er7-staging"):
        staging.handle(event)


def convert_all(hub: MemoryHub) -> list[Envelope]:
    worker = FhirHandler(hub, hub.payloads)
    before = len(hub.published)
    assert worker.handle_batch(hub.drain("fhir-r4")) is not None
    return hub.published[before:]


def test_a_parsed_message_of_a_mapped_type_becomes_a_converted_bundle() -> None:
    hub = MemoryHub()
    staged(hub)
    [converted] = convert_all(hub)
    assert (converted.event, converted.format) == (Event.CONVERTED, Format.FHIR)
    assert converted.attributes()["format"] == "fhir" and converted.id == MESSAGE_ID
    bundle = converted.payload
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "transaction")
    [patient] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert patient["identifier"][0]["value"] == "MRN1"
    assert patient["name"] == [{"family": "DOE", "given": ["JOHN"]}]
    assert (patient["birthDate"], patient["gender"]) == ("1970-01-02", "male")
    # its step in the message's path, after the staging worker's
    assert [s["service"] for s in converted.extra["steps"]][-2:] == ["er7-staging", "fhir-r4"]
    assert converted.extra["steps"][-1]["outcome"] == "converted"
    # converted events go to the lake writer only (never back to a worker)
    assert hub.drain("fhir-r4") == [] and hub.drain("er7-staging") == []
    assert [e.event for e in hub.drain("lake-writer")][-1] is Event.CONVERTED


def test_an_unmapped_type_never_reaches_it() -> None:
    hub = MemoryHub()
    staged(hub, ADT.replace("ADT^A01", "ADT^A28"), message_type="ADT^A28")
    assert hub.drain("fhir-r4") == []
    assert not FHIR_R4.matches({"event": "message.parsed", "messageType": "ADT^A28"})


def test_a_mapping_failure_is_a_located_failed_event_of_stage_fhir() -> None:
    hub = MemoryHub()
    staged(hub, ADT.replace("19700102", "19_610_6"))  # a birth date that is no HL7 date
    [failed] = convert_all(hub)
    assert (failed.event, failed.payload) == (Event.FAILED, None)
    assert failed.error == {
        "stage": "fhir", "reason": "date '19_610_6' is not an HL7 date/time",
        "segment": "PID", "segmentIndex": 2, "field": "PID-7",
    }  # fmt: skip
    assert failed.extra["steps"][-1]["outcome"] == "failed"


def test_a_mapping_crash_is_a_failure_too_never_a_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(document: Any, message_id: str) -> dict[str, Any]:
        raise KeyError("PID")

    monkeypatch.setattr(fhir_handler, "convert", crash)
    hub = MemoryHub()
    staged(hub)
    [failed] = convert_all(hub)
    assert failed.error == {"stage": "fhir", "reason": "internal mapping error (KeyError)"}


def test_it_reads_a_claim_checked_document_and_claim_checks_a_large_bundle() -> None:
    hub = MemoryHub(max_inline_bytes=2_000)
    er7 = ADT + "".join(f"NTE|{i}||{'x' * 100}\r" for i in range(40))
    staged(hub, er7)
    [parsed] = [e for e in hub.published if e.event is Event.PARSED]
    assert parsed.payload is None and parsed.payload_ref is not None  # the document came by reference
    hub.max_inline_bytes = 300
    [converted] = convert_all(hub)
    assert converted.payload is None and converted.payload_ref is not None
    bundle = json.loads(hub.payloads.get(converted.payload_ref))
    assert bundle["resourceType"] == "Bundle"


def test_a_large_error_report_keeps_its_location() -> None:
    error = MappingError("x" * 5000, segment="PID", segment_index=2, field="PID-3").to_dict()
    assert fhir_handler.bounded_error(error, fhir_handler.STAGE) == {
        "stage": "fhir", "reason": "error report too large to publish", "segmentIndex": 2
    }  # fmt: skip


def _lake(hub: MemoryHub) -> tuple[LakeWriter, MemoryObjectStore, MemoryCatalog]:
    objects, catalog = MemoryObjectStore("lake"), MemoryCatalog()
    return LakeWriter(objects, catalog, hub.payloads), objects, catalog


@pytest.mark.parametrize("converted_first", [False, True])
def test_the_lake_stores_the_bundle_and_the_catalog_keeps_parsed(converted_first: bool) -> None:
    hub = MemoryHub()
    staged(hub)
    convert_all(hub)
    events = hub.drain("lake-writer")
    assert [e.event for e in events] == [Event.RECEIVED, Event.PARSED, Event.CONVERTED]
    if converted_first:
        events = [events[2], events[0], events[1]]
    lake, objects, catalog = _lake(hub)
    for event in events:
        lake.handle(event)
    lake.close()
    key = f"fhir/source=hospital-a/type=ADT_A01/date=2026-01-02/{MESSAGE_ID}.json"
    assert key == layout.object_key(
        layout.FHIR, source="hospital-a", message_type="ADT^A01",
        received_at="2026-01-02T03:04:05.000Z", message_id=MESSAGE_ID,
    )  # fmt: skip
    body, content_type = objects.objects[key]
    assert json.loads(body)["type"] == "transaction" and content_type == "application/json"
    item = catalog.items[MESSAGE_ID]
    assert (item["status"], item["fhir"]) == ("parsed", f"s3://lake/{key}")
    assert item["parsed"].startswith("s3://lake/parsed/")


def test_a_fhir_failure_in_the_lake_keeps_parsed_and_adds_fhir_error() -> None:
    hub = MemoryHub()
    staged(hub, ADT.replace("19700102", "19_610_6"))
    convert_all(hub)
    lake, objects, catalog = _lake(hub)
    for event in hub.drain("lake-writer"):
        lake.handle(event)
    lake.close()
    item = catalog.items[MESSAGE_ID]
    assert item["status"] == "parsed" and item["fhirError"]["field"] == "PID-7"
    assert "error" not in item and not any(k.startswith("errors/") for k in objects.objects)


def test_the_lake_writer_subscription_receives_converted_events() -> None:
    lake_writer = SUBSCRIPTIONS["lake-writer"]
    assert lake_writer.matches({"event": "message.converted", "format": "fhir"})
    assert lake_writer.handles_event(Event.CONVERTED, Format.FHIR)
