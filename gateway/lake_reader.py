"""Read-only access to the catalog and the lake bucket for the read API (the gateway never writes them)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
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


def catalog_timestamp(value: str) -> str:
    """An ISO 8601 time as the catalog writes receivedAt (UTC, milliseconds, Z), so it compares with
    sort keys as text; a time without an offset is UTC. ValueError when it is not a time."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
        *,
        source: str | None = None,
        since: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first. `source` narrows `sources` (never widens them); `since` is a UTC timestamp in
        the catalog's format: only messages received at or after it."""
        ...

    def read_object(self, uri: str) -> bytes | None: ...


def narrowed(sources: tuple[str, ...], source: str | None) -> tuple[str, ...]:
    return sources if source is None else tuple(s for s in sources if s == source)


def merge_pages(
    per_source: list[list[dict[str, Any]]], limit: int, more: bool
) -> tuple[list[dict[str, Any]], str | None]:
    merged = sorted((i for items in per_source for i in items), key=lambda i: i["sortKey"], reverse=True)
    page = merged[:limit]
    has_more = more or len(merged) > limit
    return page, (page[-1]["sortKey"] if page and has_more else None)


def _key_condition(
    source: str, before: str | None, since: str | None
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The bySource key condition: a sort key has one condition only, so `since` with a cursor is
    BETWEEN (inclusive); the cursor's own item is then dropped by the caller."""
    names = {"#src": "source"}
    values: dict[str, Any] = {":src": {"S": source}}
    if before is None and since is None:
        return "#src = :src", names, values
    names["#sk"] = "sortKey"
    if before is not None:
        values[":before"] = {"S": before}
    if since is not None:
        values[":since"] = {"S": since}
    if before is not None and since is not None:
        return "#src = :src AND #sk BETWEEN :since AND :before", names, values
    return "#src = :src AND " + ("#sk < :before" if before is not None else "#sk >= :since"), names, values


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
        self,
        source: str,
        status: str | None,
        message_type: str | None,
        limit: int,
        before: str | None,
        since: str | None,
    ) -> tuple[list[dict[str, Any]], bool]:
        condition, names, values = _key_condition(source, before, since)
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
            found += [
                i
                for i in map(self._item, response["Items"])
                if matches(i, status, message_type) and i.get("sortKey") != before
            ]
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
        *,
        source: str | None = None,
        since: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        if before is not None and since is not None and since > before:
            return [], None  # BETWEEN refuses an empty range
        results = [
            self._query_source(s, status, message_type, limit, before, since)
            for s in narrowed(sources, source)
        ]
        return merge_pages([items for items, _ in results], limit, any(more for _, more in results))

    def read_object(self, uri: str) -> bytes | None:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            return bytes(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except self._s3.exceptions.NoSuchKey:
            return None
