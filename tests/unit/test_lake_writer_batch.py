"""The lake writer's batched path: a receive's objects written side by side, each envelope's outcome its
own, and the catalog's unconditional items in one BatchWriteItem call per 25."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from moto import mock_aws

from hub.events import Envelope, Event, Format
from lake import catalog as catalog_module
from lake.catalog import CatalogWriteError, DynamoCatalog, parsed_item
from lake.objects import S3ObjectStore
from lake.writer import LakeWriter
from tests.factories import received_envelope
from tests.fakes.hub import MemoryPayloadStore
from tests.fakes.lake import MemoryCatalog, MemoryObjectStore

MSG = "MSH|^~\\&|LAB|HOSP_A|LAKE|AWS|20260101120000||ADT^A01|CTRL-1|P|2.5.1\rPID|1||MRN1\r"


def received(n: int) -> Envelope:
    return received_envelope(MSG, f"01JBATCHWRITER{n:012d}")


def parsed(n: int) -> Envelope:
    envelope = received(n)
    return envelope.derive(Event.PARSED, Format.JSON, payload={"id": envelope.id, "segments": []})


def failed(n: int) -> Envelope:
    return received(n).derive(Event.FAILED, Format.JSON, error={"reason": "bad", "field": "PID-3"})


class CountingCatalog(MemoryCatalog):
    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def record_received(self, *args: Any) -> None:
        self.calls["received"] += 1
        super().record_received(*args)

    def record_many(self, items: Any) -> list[BaseException | None]:
        self.calls["many"] += 1
        return super().record_many(items)


class FailingObjects(MemoryObjectStore):
    """Refuses every object of one message id; each put takes a little time, so that overlaps show."""

    def __init__(self, failing_id: str | None = None) -> None:
        super().__init__("lake")
        self.failing_id = failing_id
        self._guard = threading.Lock()
        self.active: Counter[str] = Counter()
        self.max_per_id = 0
        self.max_overall = 0

    def put(self, key: str, body: bytes, content_type: str) -> None:
        message_id = key.rsplit("/", 1)[-1].split(".")[0]
        with self._guard:
            self.active[message_id] += 1
            self.max_per_id = max(self.max_per_id, self.active[message_id])
            self.max_overall = max(self.max_overall, sum(self.active.values()))
        try:
            time.sleep(0.02)
            if message_id == self.failing_id:
                raise OSError("S3 put refused")
            super().put(key, body, content_type)
        finally:
            with self._guard:
                self.active[message_id] -= 1


def test_received_and_parsed_of_one_id_in_one_batch_end_parsed() -> None:
    objects, catalog = MemoryObjectStore("lake"), CountingCatalog()
    writer = LakeWriter(objects, catalog, MemoryPayloadStore())
    assert writer.handle_batch([received(1), parsed(1), received(2)]) == [None, None, None]
    item = catalog.items[received(1).id]
    assert item["status"] == "parsed"
    assert item["raw"] in {f"s3://lake/{k}" for k in objects.objects if k.startswith("raw/")}
    assert item["parsed"] in {f"s3://lake/{k}" for k in objects.objects if k.startswith("parsed/")}
    assert sorted(k.split("/")[0] for k in objects.objects if received(1).id in k) == ["parsed", "raw"]
    # the superseded `received` put is skipped; the other message's is not
    assert catalog.calls == Counter({"received": 1, "many": 1})
    assert catalog.items[received(2).id]["status"] == "received"


def test_one_failing_object_put_fails_only_its_envelope() -> None:
    objects, catalog = FailingObjects(failing_id=received(2).id), MemoryCatalog()
    writer = LakeWriter(objects, catalog, MemoryPayloadStore())
    outcomes = writer.handle_batch([parsed(1), parsed(2), parsed(3), failed(4)])
    assert outcomes[0] is None and outcomes[2] is None and outcomes[3] is None
    assert isinstance(outcomes[1], OSError)
    assert received(2).id not in catalog.items
    assert [catalog.items[received(n).id]["status"] for n in (1, 3, 4)] == ["parsed", "parsed", "failed"]
    with pytest.raises(OSError):
        writer.handle(parsed(2))  # the single-event path raises the outcome


def test_a_received_is_written_when_its_parsed_fails_in_the_same_batch() -> None:
    objects, catalog = FailingObjects(), MemoryCatalog()
    writer = LakeWriter(objects, catalog, MemoryPayloadStore())
    original = objects.put

    def put(key: str, body: bytes, content_type: str) -> None:
        if key.startswith("parsed/"):
            raise OSError("S3 put refused")
        original(key, body, content_type)

    objects.put = put  # type: ignore[method-assign]
    outcomes = writer.handle_batch([received(1), parsed(1)])
    assert outcomes[0] is None and isinstance(outcomes[1], OSError)
    assert catalog.items[received(1).id]["status"] == "received"  # the raw message is in the lake


def test_objects_are_written_concurrently_but_never_two_of_one_id() -> None:
    objects, catalog = FailingObjects(), MemoryCatalog()
    writer = LakeWriter(objects, catalog, MemoryPayloadStore())
    batch = [received(1), parsed(1), failed(1), *(parsed(n) for n in range(2, 9))]
    assert writer.handle_batch(batch) == [None] * len(batch)
    assert objects.max_overall > 1 and objects.max_per_id == 1
    assert catalog.items[received(1).id]["status"] == "parsed"


@pytest.fixture
def aws_lake() -> Iterator[tuple[Any, Any, str, str]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        bucket, table = "lake", f"catalog-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        ddb.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield s3, ddb, bucket, table


def _count_calls(client: Any) -> Counter[str]:
    calls: Counter[str] = Counter()

    def before_call(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    client.meta.events.register("before-call.*.*", before_call)
    return calls


def test_ten_parsed_events_cost_one_dynamodb_write_and_one_read(aws_lake: tuple[Any, Any, str, str]) -> None:
    s3, ddb, bucket, table = aws_lake
    writer = LakeWriter(S3ObjectStore(s3, bucket), DynamoCatalog(ddb, table), MemoryPayloadStore())
    ddb_calls, s3_calls = _count_calls(ddb), _count_calls(s3)
    assert writer.handle_batch([parsed(n) for n in range(10)]) == [None] * 10
    # and one read: a parsed put keeps what a converter wrote (lake.catalog `_keeping_conversions`)
    assert ddb_calls == Counter({"BatchWriteItem": 1, "BatchGetItem": 1})
    assert s3_calls == Counter({"PutObject": 10})
    de = TypeDeserializer()
    items = ddb.scan(TableName=table)["Items"]
    assert sorted(de.deserialize(i["status"]) for i in items) == ["parsed"] * 10


def test_received_and_parsed_on_moto(aws_lake: tuple[Any, Any, str, str]) -> None:
    s3, ddb, bucket, table = aws_lake
    writer = LakeWriter(S3ObjectStore(s3, bucket), DynamoCatalog(ddb, table), MemoryPayloadStore())
    ddb_calls = _count_calls(ddb)
    assert writer.handle_batch([received(1), parsed(1), received(2), parsed(2)]) == [None] * 4
    assert ddb_calls == Counter({"BatchWriteItem": 1, "BatchGetItem": 1})  # both received puts superseded
    keys = sorted(o["Key"].split("/")[0] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["parsed", "parsed", "raw", "raw"]
    item = ddb.get_item(TableName=table, Key={"id": {"S": received(1).id}})["Item"]
    assert item["status"]["S"] == "parsed" and item["raw"]["S"].startswith("s3://lake/raw/")
    writer.handle(received(1))  # a late redelivery never downgrades
    item = ddb.get_item(TableName=table, Key={"id": {"S": received(1).id}})["Item"]
    assert item["status"]["S"] == "parsed"


class Unprocessing:
    """A DynamoDB client that leaves the first item of every BatchWriteItem unprocessed `times` times."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.requests: list[int] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        return {"Responses": {table: [] for table in RequestItems}}  # no conversion written yet

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:
        [(table, requests)] = RequestItems.items()
        self.requests.append(len(requests))
        if self.times > 0:
            self.times -= 1
            return {"UnprocessedItems": {table: requests[:1]}}
        return {"UnprocessedItems": {}}


def _items(n: int) -> list[dict[str, Any]]:
    return [parsed_item(_entry(i), "s3://l/r", "s3://l/p", []) for i in range(n)]


def _entry(i: int) -> Any:
    from lake.catalog import CatalogEntry

    return CatalogEntry(id=f"id{i:03d}", source="s", message_type="ADT^A01", control_id="c", received_at="t")


def test_unprocessed_items_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_module, "BATCH_WRITE_BACKOFF_SECONDS", 0)
    client = Unprocessing(times=2)
    assert DynamoCatalog(client, "t").record_many(_items(30)) == [None] * 30
    assert client.requests == [25, 1, 1, 5]  # 25 a call; the unprocessed one sent again


def test_an_item_still_unprocessed_fails_its_envelope(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_module, "BATCH_WRITE_BACKOFF_SECONDS", 0)
    client = Unprocessing(times=100)
    outcomes = DynamoCatalog(client, "t").record_many(_items(3))
    assert isinstance(outcomes[0], CatalogWriteError) and outcomes[1:] == [None, None]
    assert len(client.requests) == catalog_module.BATCH_WRITE_TRIES
