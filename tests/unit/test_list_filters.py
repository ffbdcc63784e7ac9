"""GET /v1/messages narrowed by source and since (besides status and type), ABAC still applied; the
same filters on DynamoDB (moto in process)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from gateway.lake_reader import DynamoLakeReader, catalog_timestamp
from tests.unit.test_gateway_api import Stack

ROWS = [  # id, source, status, messageType, day of January 2026
    ("M0", "hospital-a", "parsed", "ADT^A01", 1),
    ("M1", "hospital-b", "parsed", "ADT^A01", 2),
    ("M2", "hospital-a", "failed", "ORU^R01", 3),
    ("M3", "hospital-a", "parsed", "ADT^A01", 4),
    ("M4", "hospital-c", "received", "ADT^A01", 5),
]


def item(mid: str, source: str, status: str, message_type: str, day: int) -> dict[str, Any]:
    at = f"2026-01-0{day}T00:00:00.000Z"
    return {
        "id": mid,
        "source": source,
        "status": status,
        "messageType": message_type,
        "controlId": f"C{mid}",
        "receivedAt": at,
        "sortKey": f"{at}#{mid}",
        "raw": f"s3://lake/raw/{mid}.hl7",
        "parsed": None,
        "error": None,
    }


@pytest.fixture
def stack() -> Iterator[Stack]:
    stack = Stack()
    for row in ROWS:
        stack.reader.items[row[0]] = item(*row)
    yield stack


def ids(stack: Stack, query: str, **claims: str) -> list[str]:
    response = stack.client.get(f"/v1/messages?{query}", headers=stack.auth(**claims))
    assert response.status_code == 200, response.text
    return [i["id"] for i in response.json()["items"]]


READ_AB = {"custom:read": "hospital-a,hospital-b"}


def test_source_narrows_to_one_readable_source(stack: Stack) -> None:
    assert ids(stack, "", **READ_AB) == ["M3", "M2", "M1", "M0"]
    assert ids(stack, "source=hospital-b", **READ_AB) == ["M1"]
    assert ids(stack, "source=hospital-a", **READ_AB) == ["M3", "M2", "M0"]


def test_source_never_widens_what_the_token_may_read(stack: Stack) -> None:
    assert ids(stack, "source=hospital-c", **READ_AB) == []
    assert ids(stack, "source=hospital-b") == []  # the default token reads hospital-a only


def test_since_keeps_messages_received_at_or_after_it(stack: Stack) -> None:
    assert ids(stack, "since=2026-01-03T00:00:00Z", **READ_AB) == ["M3", "M2"]
    assert ids(stack, "since=2026-01-02T01:00:00%2B01:00", **READ_AB) == ["M3", "M2", "M1"]  # = 00:00Z
    assert ids(stack, "since=2026-01-02T00:00:00", **READ_AB) == ["M3", "M2", "M1"]  # naive: UTC
    assert ids(stack, "since=2026-02-01T00:00:00Z", **READ_AB) == []


def test_since_with_a_cursor_and_the_other_filters(stack: Stack) -> None:
    auth = stack.auth(**READ_AB)
    first = stack.client.get("/v1/messages?since=2026-01-02T00:00:00Z&limit=2", headers=auth).json()
    assert [i["id"] for i in first["items"]] == ["M3", "M2"] and first["next"]
    second = stack.client.get(
        f"/v1/messages?since=2026-01-02T00:00:00Z&limit=2&cursor={first['next']}", headers=auth
    ).json()
    assert [i["id"] for i in second["items"]] == ["M1"] and second["next"] is None
    query = "since=2026-01-02T00:00:00Z&status=parsed&type=ADT_A01&source=hospital-a"
    assert ids(stack, query, **READ_AB) == ["M3"]


def test_bad_since_is_a_400(stack: Stack) -> None:
    response = stack.client.get("/v1/messages?since=yesterday", headers=stack.auth())
    assert response.status_code == 400 and response.json()["error"] == "bad_since"


def test_no_filters_keep_the_old_shape(stack: Stack) -> None:
    body = stack.client.get("/v1/messages", headers=stack.auth()).json()
    assert set(body) == {"items", "next"} and [i["id"] for i in body["items"]] == ["M3", "M2", "M0"]


def test_catalog_timestamp_matches_the_catalog_format() -> None:
    assert catalog_timestamp("2026-01-02T03:04:05Z") == "2026-01-02T03:04:05.000Z"
    assert catalog_timestamp("2026-01-02T04:04:05.5+01:00") == "2026-01-02T03:04:05.500Z"
    with pytest.raises(ValueError):
        catalog_timestamp("1h")


@pytest.fixture
def dynamo_reader() -> Iterator[DynamoLakeReader]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        table = f"catalog-{uuid.uuid4().hex[:8]}"
        ddb.create_table(
            TableName=table,
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"} for name in ("id", "source", "sortKey")
            ],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "bySource",
                    "KeySchema": [
                        {"AttributeName": "source", "KeyType": "HASH"},
                        {"AttributeName": "sortKey", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for row in ROWS:
            fields = {k: v for k, v in item(*row).items() if v is not None}
            ddb.put_item(TableName=table, Item={k: {"S": v} for k, v in fields.items()})
        yield DynamoLakeReader(ddb, boto3.client("s3", region_name="us-east-1"), table)


def page_ids(reader: DynamoLakeReader, before: str | None = None, **narrowing: str) -> list[str]:
    items, _ = reader.page(("hospital-a", "hospital-b"), None, None, 10, before, **narrowing)
    return [i["id"] for i in items]


def test_dynamo_reader_filters_by_source_and_since(dynamo_reader: DynamoLakeReader) -> None:
    assert page_ids(dynamo_reader) == ["M3", "M2", "M1", "M0"]
    assert page_ids(dynamo_reader, source="hospital-b") == ["M1"]
    assert page_ids(dynamo_reader, source="hospital-c") == []
    assert page_ids(dynamo_reader, since="2026-01-02T00:00:00.000Z") == ["M3", "M2", "M1"]
    cursor = "2026-01-03T00:00:00.000Z#M2"
    assert page_ids(dynamo_reader, cursor, since="2026-01-02T00:00:00.000Z") == ["M1"]
    assert page_ids(dynamo_reader, cursor) == ["M1", "M0"]
    assert page_ids(dynamo_reader, cursor, since="2026-01-04T00:00:00.000Z") == []
