"""The catalog's order rules, on the in-memory fake and on DynamoDB (moto in process) side by side:
events arrive in any order and any number of times; the item ends in the state of the latest stage."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from moto import mock_aws

from lake.catalog import Catalog, CatalogEntry, DynamoCatalog
from tests.fakes.lake import MemoryCatalog

ENTRY = CatalogEntry(
    id="01JCAT",
    source="hospital-a",
    message_type="ADT^A01",
    control_id="C1",
    received_at="2026-01-02T03:04:05Z",
)
RAW, PARSED, ERROR = "s3://lake/raw/x.hl7", "s3://lake/parsed/x.json", "s3://lake/errors/x.json"

Reader = Callable[[str], dict[str, Any]]


@pytest.fixture(params=["memory", "dynamodb"])
def catalog(request: pytest.FixtureRequest) -> Iterator[tuple[Catalog, Reader]]:
    if request.param == "memory":
        memory = MemoryCatalog()
        yield memory, lambda i: memory.items.get(i, {})
        return
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        table = f"catalog-{uuid.uuid4().hex[:8]}"
        ddb.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        de = TypeDeserializer()

        def read(message_id: str) -> dict[str, Any]:
            item = ddb.get_item(TableName=table, Key={"id": {"S": message_id}}).get("Item", {})
            return {k: de.deserialize(v) for k, v in item.items()}

        yield DynamoCatalog(ddb, table), read


EVENTS: dict[str, Callable[[Catalog], None]] = {
    "received": lambda c: c.record_received(ENTRY, RAW),
    "parsed": lambda c: c.record_parsed(ENTRY, RAW, PARSED, []),
    "failed": lambda c: c.record_failed(ENTRY, RAW, ERROR, {"reason": "bad MSH-9", "field": "MSH-9"}),
}


@pytest.mark.parametrize("order", list(itertools.permutations(["received", "parsed"])))
def test_parsed_wins_in_any_order(catalog: tuple[Catalog, Reader], order: tuple[str, ...]) -> None:
    store, read = catalog
    for name in order:
        EVENTS[name](store)
    item = read(ENTRY.id)
    assert (item["status"], item["raw"], item["parsed"]) == ("parsed", RAW, PARSED)
    assert item["messageType"] == "ADT^A01" and item["sortKey"] == f"{ENTRY.received_at}#{ENTRY.id}"


@pytest.mark.parametrize("order", list(itertools.permutations(["received", "failed"])))
def test_failed_wins_over_received_in_any_order(
    catalog: tuple[Catalog, Reader], order: tuple[str, ...]
) -> None:
    store, read = catalog
    for name in order:
        EVENTS[name](store)
    item = read(ENTRY.id)
    assert (item["status"], item["errorLocation"], item["raw"]) == ("failed", ERROR, RAW)
    assert item["error"]["field"] == "MSH-9"


@pytest.mark.parametrize("first", ["received", "parsed", "failed"])
def test_a_redelivery_changes_nothing(catalog: tuple[Catalog, Reader], first: str) -> None:
    store, read = catalog
    EVENTS[first](store)
    before = {k: v for k, v in read(ENTRY.id).items() if k != "updatedAt"}
    EVENTS[first](store)
    assert {k: v for k, v in read(ENTRY.id).items() if k != "updatedAt"} == before


def test_failed_never_overrides_parsed(catalog: tuple[Catalog, Reader]) -> None:
    store, read = catalog
    EVENTS["parsed"](store)
    EVENTS["failed"](store)
    EVENTS["received"](store)
    item = read(ENTRY.id)
    assert item["status"] == "parsed" and "error" not in item and "errorLocation" not in item


def test_parsed_after_failed_clears_the_error(catalog: tuple[Catalog, Reader]) -> None:
    store, read = catalog
    EVENTS["failed"](store)
    store.record_parsed(ENTRY, RAW, PARSED, [{"code": "length", "where": "PID-5"}])
    item = read(ENTRY.id)
    assert item["status"] == "parsed" and "error" not in item
    assert item["findings"] == [{"code": "length", "where": "PID-5"}]


def test_a_batch_item_goes_processing_to_completed_never_back(catalog: tuple[Catalog, Reader]) -> None:
    from lake.catalog import batch_item

    store, read = catalog
    processing = batch_item("01JBATCH", "hospital-a", "2026-01-02T03:04:05Z", "s3://lake/batches/b.hl7",
                            {"messages": 3}, None)  # fmt: skip
    completed = batch_item("01JBATCH", "hospital-a", "2026-01-02T03:04:05Z", "s3://lake/batches/b.hl7",
                           {"messages": 3, "accepted": 2, "duplicate": 1, "rejected": 0},
                           "s3://lake/batches/b.json")  # fmt: skip
    store.record_batch(processing)
    assert read("01JBATCH")["status"] == "processing"
    store.record_batch(completed)
    store.record_batch(processing)  # a late or redelivered batch.received
    item = read("01JBATCH")
    assert (item["status"], item["accepted"], item["outcomes"]) == (
        "completed",
        2,
        "s3://lake/batches/b.json",
    )
    assert item["kind"] == "batch" and "sortKey" not in item  # never in the message list's index


def _entry(i: int) -> CatalogEntry:
    return CatalogEntry(
        id=f"01JMANY{i:04d}",
        source="hospital-a",
        message_type="ADT^A01",
        control_id=f"C{i}",
        received_at="2026-01-02T03:04:05Z",
    )


def test_record_many_writes_more_than_25_items(catalog: tuple[Catalog, Reader]) -> None:
    from lake.catalog import parsed_item

    store, read = catalog
    items = [
        parsed_item(_entry(i), f"s3://lake/raw/{i}.hl7", f"s3://lake/parsed/{i}.json", []) for i in range(60)
    ]
    assert store.record_many(items) == [None] * 60
    for i in (0, 24, 25, 49, 50, 59):
        item = read(f"01JMANY{i:04d}")
        assert (item["status"], item["parsed"], item["controlId"]) == (
            "parsed",
            f"s3://lake/parsed/{i}.json",
            f"C{i}",
        )
        assert "updatedAt" in item


def test_record_many_keeps_one_item_per_id(catalog: tuple[Catalog, Reader]) -> None:
    from lake.catalog import parsed_item

    store, read = catalog
    first = parsed_item(ENTRY, RAW, PARSED, [])
    again = parsed_item(ENTRY, RAW, "s3://lake/parsed/again.json", [{"code": "length", "where": "PID-5"}])
    other = parsed_item(_entry(1), RAW, PARSED, [])
    assert store.record_many([first, other, again]) == [None, None, None]  # DynamoDB refuses duplicates
    item = read(ENTRY.id)
    assert item["parsed"] == "s3://lake/parsed/again.json" and item["findings"][0]["where"] == "PID-5"
    assert read(_entry(1).id)["status"] == "parsed"


def test_record_many_keeps_the_order_rules(catalog: tuple[Catalog, Reader]) -> None:
    from lake.catalog import batch_item, parsed_item

    store, read = catalog
    EVENTS["failed"](store)
    completed = batch_item("01JBATCH", "hospital-a", "2026-01-02T03:04:05Z", "s3://lake/batches/b.hl7",
                           {"messages": 3, "accepted": 3}, "s3://lake/batches/b.json")  # fmt: skip
    assert store.record_many([parsed_item(ENTRY, RAW, PARSED, []), completed]) == [None, None]
    item = read(ENTRY.id)
    assert item["status"] == "parsed" and "error" not in item  # parsed wins over failed
    EVENTS["received"](store)  # a later received never downgrades parsed
    EVENTS["failed"](store)  # nor does a later failure
    assert read(ENTRY.id)["status"] == "parsed" and "error" not in read(ENTRY.id)
    store.record_batch(batch_item("01JBATCH", "hospital-a", "2026-01-02T03:04:05Z",
                                  "s3://lake/batches/b.hl7", {"messages": 3}, None))  # fmt: skip
    assert read("01JBATCH")["status"] == "completed"


@pytest.mark.parametrize("status", ["received", "failed", "processing"])
def test_record_many_refuses_conditional_items(catalog: tuple[Catalog, Reader], status: str) -> None:
    from lake.catalog import batch_item, failed_item, received_item

    store, read = catalog
    item = {
        "received": received_item(ENTRY, RAW),
        "failed": failed_item(ENTRY, RAW, ERROR, {"reason": "x"}),
        "processing": batch_item("01JCAT", "hospital-a", "2026-01-02T03:04:05Z", RAW, {"messages": 1}, None),
    }[status]
    EVENTS["parsed"](store)
    with pytest.raises(ValueError):
        store.record_many([item])
    assert read(ENTRY.id)["status"] == "parsed"


def test_the_message_path_is_kept_with_the_item(catalog: tuple[Catalog, Reader]) -> None:
    from dataclasses import replace

    from lake.catalog import parsed_item

    store, read = catalog
    step = {
        "service": "lake-writer", "instance": "host:1", "event": "message.received", "outcome": "stored",
        "reason": None, "receivedAt": "2026-01-02T03:04:05.000Z", "doneAt": "2026-01-02T03:04:05.010Z",
        "tries": 2,
    }  # fmt: skip
    store.record_received(replace(ENTRY, steps=(step,)), RAW)
    assert [dict(s, tries=int(s["tries"])) for s in read(ENTRY.id)["steps"]] == [step]
    later = {**step, "event": "message.parsed", "doneAt": "2026-01-02T03:04:06.000Z", "tries": 1}
    assert store.record_many([parsed_item(replace(ENTRY, steps=(step, later)), RAW, PARSED, [])]) == [None]
    assert [s["event"] for s in read(ENTRY.id)["steps"]] == ["message.received", "message.parsed"]


# --- a converter's key (message.converted, a converter's message.failed): beside the status -------

FHIR = "s3://lake/fhir/x.json"
FHIR_ERROR = {
    "stage": "fhir",
    "reason": "PID-3 is empty",
    "segment": "PID",
    "segmentIndex": 2,
    "field": "PID-3",
}
CONVERSIONS: dict[str, Callable[[Catalog], None]] = {
    "converted": lambda c: c.record_converted(ENTRY.id, "fhir", FHIR),
    "fhir-failed": lambda c: c.record_conversion_failed(ENTRY.id, "fhir", FHIR_ERROR),
    "parsed-many": lambda c: _assert_written(c.record_many([_parsed_item()])),
}


def _parsed_item() -> dict[str, Any]:
    from lake.catalog import parsed_item

    return parsed_item(ENTRY, RAW, PARSED, [])


def _assert_written(outcomes: list[BaseException | None]) -> None:
    assert outcomes == [None]


def _apply(store: Catalog, name: str) -> None:
    (EVENTS.get(name) or CONVERSIONS[name])(store)


@pytest.mark.parametrize(
    "order",
    [
        *itertools.permutations(["received", "parsed", "converted"]),
        *itertools.permutations(["received", "parsed-many", "converted"]),
    ],
)
def test_a_conversion_ends_beside_parsed_in_any_order(
    catalog: tuple[Catalog, Reader], order: tuple[str, ...]
) -> None:
    store, read = catalog
    for name in order:
        _apply(store, name)
    item = read(ENTRY.id)
    assert (item["status"], item["raw"], item["parsed"], item["fhir"]) == ("parsed", RAW, PARSED, FHIR)
    assert item["sortKey"] == f"{ENTRY.received_at}#{ENTRY.id}"


@pytest.mark.parametrize("again", ["received", "parsed", "parsed-many", "converted"])
def test_a_redelivery_after_the_conversion_keeps_it(catalog: tuple[Catalog, Reader], again: str) -> None:
    store, read = catalog
    for name in ("received", "parsed", "converted", again):
        _apply(store, name)
    item = read(ENTRY.id)
    assert (item["status"], item["fhir"]) == ("parsed", FHIR)


def test_a_received_after_an_early_conversion_keeps_it(catalog: tuple[Catalog, Reader]) -> None:
    store, read = catalog
    for name in ("received", "converted", "received"):
        _apply(store, name)
    assert (read(ENTRY.id)["status"], read(ENTRY.id)["fhir"]) == ("received", FHIR)
    _apply(store, "parsed")
    assert (read(ENTRY.id)["status"], read(ENTRY.id)["fhir"]) == ("parsed", FHIR)


@pytest.mark.parametrize(
    "order",
    [
        *itertools.permutations(["received", "parsed", "fhir-failed"]),
        *itertools.permutations(["parsed-many", "fhir-failed"]),
    ],
)
def test_a_conversion_failure_keeps_parsed_and_adds_the_error(
    catalog: tuple[Catalog, Reader], order: tuple[str, ...]
) -> None:
    store, read = catalog
    for name in order:
        _apply(store, name)
    item = read(ENTRY.id)
    assert (item["status"], item["parsed"]) == ("parsed", PARSED)
    assert {**item["fhirError"], "segmentIndex": int(item["fhirError"]["segmentIndex"])} == FHIR_ERROR
    assert "error" not in item and "errorLocation" not in item and "fhir" not in item


def test_a_conversion_replaces_an_earlier_failure_never_the_reverse(catalog: tuple[Catalog, Reader]) -> None:
    store, read = catalog
    for name in ("parsed", "fhir-failed", "converted"):
        _apply(store, name)
    assert read(ENTRY.id)["fhir"] == FHIR and "fhirError" not in read(ENTRY.id)
    _apply(store, "fhir-failed")  # a stale failure, redelivered
    assert read(ENTRY.id)["fhir"] == FHIR and "fhirError" not in read(ENTRY.id)
