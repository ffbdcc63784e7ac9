"""Read-only access to the catalog and the lake bucket for the read API (the gateway never writes them)."""

from __future__ import annotations

import base64
import binascii
import json
from decimal import Decimal
from typing import Any, Protocol

from boto3.dynamodb.types import TypeDeserializer

SOURCE_INDEX = "bySource"
PUBLIC_FIELDS = ("id", "status", "messageType", "controlId", "source", "receivedAt", "raw", "parsed", "error")
OPTIONAL_FIELDS = ("flags", "findings", "batch", "updatedAt")


class CursorError(ValueError):
    pass


def public_item(item: dict[str, Any]) -> dict[str, Any]:
    view = {name: item.get(name) for name in PUBLIC_FIELDS}
    view.update({name: item[name] for name in OPTIONAL_FIELDS if name in item})
    return view


def encode_cursor(sort_key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": sort_key}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return str(data["before"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise CursorError("cursor is not one this API returned") from None


def is_message(item: dict[str, Any]) -> bool:
    """Catalog items are messages, except a batch body's own item (GET /v1/batches/{id})."""
    return bool(item.get("kind", "message") != "batch")


def matches(item: dict[str, Any], status: str | None, message_type: str | None) -> bool:
    return (
        is_message(item)
        and (status is None or item.get("status") == status)
        and (message_type is None or item.get("messageType") == message_type)
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(v) for v in value]
    return value


class LakeReader(Protocol):
    def get(self, message_id: str) -> dict[str, Any] | None: ...

    def page(
        self,
        sources: tuple[str, ...],
        status: str | None,
        message_type: str | None,
        limit: int,
        before: str | None,
    ) -> tuple[list[dict[str, Any]], str | None]: ...

    def read_object(self, uri: str) -> bytes | None: ...


def merge_pages(
    per_source: list[list[dict[str, Any]]], limit: int, more: bool
) -> tuple[list[dict[str, Any]], str | None]:
    merged = sorted((i for items in per_source for i in items), key=lambda i: i["sortKey"], reverse=True)
    page = merged[:limit]
    has_more = more or len(merged) > limit
    return page, (page[-1]["sortKey"] if page and has_more else None)


class DynamoLakeReader:
    def __init__(self, dynamodb: Any, s3: Any, table: str) -> None:
        self._ddb = dynamodb
        self._s3 = s3
        self._table = table
        self._deser = TypeDeserializer()

    def _item(self, raw: dict[str, Any]) -> dict[str, Any]:
        return {k: _plain(self._deser.deserialize(v)) for k, v in raw.items()}

    def get(self, message_id: str) -> dict[str, Any] | None:
        raw = self._ddb.get_item(TableName=self._table, Key={"id": {"S": message_id}}, ConsistentRead=True)
        return self._item(raw["Item"]) if "Item" in raw else None

    def _query_source(
        self, source: str, status: str | None, message_type: str | None, limit: int, before: str | None
    ) -> tuple[list[dict[str, Any]], bool]:
        condition = "#src = :src" + (" AND #sk < :before" if before else "")
        names = {"#src": "source"} | ({"#sk": "sortKey"} if before else {})
        values: dict[str, Any] = {":src": {"S": source}} | ({":before": {"S": before}} if before else {})
        found: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while len(found) <= limit:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": SOURCE_INDEX,
                "KeyConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ScanIndexForward": False,
                "Limit": max(limit + 1, 25),
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            response = self._ddb.query(**kwargs)
            found += [i for i in map(self._item, response["Items"]) if matches(i, status, message_type)]
            start = response.get("LastEvaluatedKey")
            if not start:
                return found[: limit + 1], len(found) > limit
        return found[: limit + 1], True

    def page(
        self,
        sources: tuple[str, ...],
        status: str | None,
        message_type: str | None,
        limit: int,
        before: str | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        results = [self._query_source(s, status, message_type, limit, before) for s in sources]
        return merge_pages([items for items, _ in results], limit, any(more for _, more in results))

    def read_object(self, uri: str) -> bytes | None:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            return bytes(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except self._s3.exceptions.NoSuchKey:
            return None
