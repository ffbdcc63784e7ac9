"""The catalog: one DynamoDB item per message id, written idempotently and in any event order.

Status moves received → parsed | failed. A `received` event never downgrades a later status, and
a `failed` event never overrides `parsed`, so events may arrive in any order and any number of times.

A converter (a subscriber that turns the parsed document into another format, e.g. FHIR R4) adds
one key beside the status, named after its format (`fhir`: the converted object's URI), or on
failure `<format>Error`; it never changes the status. See `DynamoCatalog.record_converted`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from hub.events import utc_timestamp

RECEIVED, PARSED, FAILED = "received", "parsed", "failed"
# A batch body accepted whole: `processing` until the splitter's outcomes arrive, then `completed`.
PROCESSING, COMPLETED = "processing", "completed"
BATCH_KIND = "batch"
# BatchWriteItem takes at most 25 puts; unprocessed ones are retried this many times, backing off.
MAX_BATCH_WRITE = 25
BATCH_WRITE_TRIES = 4
BATCH_WRITE_BACKOFF_SECONDS = 0.05
# The formats converters write (their item keys: `fhir`, `fhirError`); BatchGetItem reads 100 keys a call.
CONVERTED_FORMATS = ("fhir",)
CONVERTED_KEYS = tuple(k for f in CONVERTED_FORMATS for k in (f, f"{f}Error"))
MAX_BATCH_GET = 100


_CONVERTED_NAMES = {f"#conv{n}": key for n, key in enumerate(CONVERTED_KEYS)}
_NO_CONVERSION = "".join(f" AND attribute_not_exists({name})" for name in _CONVERTED_NAMES)


class CatalogWriteError(RuntimeError):
    """An item DynamoDB left unprocessed after every retry: its event fails, and the consumer retries it."""


@dataclass(frozen=True)
class CatalogEntry:
    """What every event knows about its message (the envelope's metadata)."""

    id: str
    source: str
    message_type: str
    control_id: str
    received_at: str
    digest: str | None = None
    flags: tuple[str, ...] = ()
    batch: dict[str, Any] | None = None
    # The message's path as far as this write knows it (hub/steps.py; lake/writer.py says which).
    steps: tuple[dict[str, Any], ...] = ()

    def attributes(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "source": self.source,
            "messageType": self.message_type,
            "controlId": self.control_id,
            "receivedAt": self.received_at,
            "sortKey": f"{self.received_at}#{self.id}",
        }
        if self.digest:
            data["digest"] = self.digest
        if self.flags:
            data["flags"] = list(self.flags)
        if self.batch:
            data["batch"] = self.batch
        if self.steps:
            data["steps"] = list(self.steps)
        return data


class Catalog(Protocol):
    def record_batch(self, item: dict[str, Any]) -> None: ...

    def record_received(self, entry: CatalogEntry, raw_uri: str) -> None: ...

    def record_parsed(
        self, entry: CatalogEntry, raw_uri: str, parsed_uri: str, findings: list[Any]
    ) -> None: ...

    def record_failed(
        self, entry: CatalogEntry, raw_uri: str | None, error_uri: str, error: dict[str, Any]
    ) -> None: ...

    def record_converted(self, message_id: str, format: str, uri: str) -> None:
        """The message's `format` form is at `uri` (status and every other key unchanged)."""
        ...

    def record_conversion_failed(self, message_id: str, format: str, error: dict[str, Any]) -> None:
        """Converting to `format` failed (status unchanged; never over a successful conversion)."""
        ...

    def record_many(self, items: Sequence[dict[str, Any]]) -> list[BaseException | None]:
        """Unconditional puts only (a `parsed_item`, a completed `batch_item`: states that win over
        everything), in as few calls as the store allows. One outcome per item, None when written;
        items sharing an id (a redelivery) are written once, the last one, and share its outcome."""
        ...


def _last_per_id(items: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last item of each id, in order of first appearance."""
    kept: dict[str, dict[str, Any]] = {}
    for item in items:
        kept[item["id"]] = item
    return kept


def is_unconditional(item: dict[str, Any]) -> bool:
    """Whether an item may be written without a condition (its status wins over every other)."""
    if item.get("kind") == BATCH_KIND:
        return bool(item["status"] == COMPLETED)
    return bool(item.get("status") == PARSED)


def batch_item(
    batch_id: str,
    source: str,
    received_at: str,
    raw_uri: str,
    summary: dict[str, Any],
    outcomes_uri: str | None,
) -> dict[str, Any]:
    """A batch's own catalog item. It has no sortKey, so the bySource index (the message list) never
    shows it; it is read by id (GET /v1/batches/{id})."""
    item: dict[str, Any] = {
        "id": batch_id,
        "kind": BATCH_KIND,
        "source": source,
        "receivedAt": received_at,
        "raw": raw_uri,
        "status": COMPLETED if outcomes_uri else PROCESSING,
    }
    item.update({k: summary[k] for k in ("messages", "accepted", "duplicate", "rejected") if k in summary})
    if outcomes_uri:
        item["outcomes"] = outcomes_uri
    return item


def received_item(entry: CatalogEntry, raw_uri: str) -> dict[str, Any]:
    return {"id": entry.id, **entry.attributes(), "status": RECEIVED, "raw": raw_uri}


def parsed_item(entry: CatalogEntry, raw_uri: str, parsed_uri: str, findings: list[Any]) -> dict[str, Any]:
    item = {"id": entry.id, **entry.attributes(), "status": PARSED, "raw": raw_uri, "parsed": parsed_uri}
    if findings:
        item["findings"] = findings
    return item


def failed_item(
    entry: CatalogEntry, raw_uri: str | None, error_uri: str, error: dict[str, Any]
) -> dict[str, Any]:
    item = {
        "id": entry.id,
        **entry.attributes(),
        "status": FAILED,
        "error": error,
        "errorLocation": error_uri,
    }
    if raw_uri:
        item["raw"] = raw_uri
    return item


class DynamoCatalog:
    """Each event writes the whole item with one conditional PutItem (every event carries the full
    metadata, and object keys follow from it): a third of the emulator's cost of an UpdateItem, and
    no read-modify-write to race. The conditions keep the order rules."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table
        self._serializer = TypeSerializer()

    def _put(self, item: dict[str, Any], condition: str | None = None) -> None:
        item = {**item, "updatedAt": utc_timestamp()}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Item": {k: self._serializer.serialize(v) for k, v in item.items()},
        }
        if condition:
            kwargs["ConditionExpression"] = condition
            names = {"#id": "id", "#s": "status", **_CONVERTED_NAMES}
            kwargs["ExpressionAttributeNames"] = {k: v for k, v in names.items() if k in condition}
            values = {":received": RECEIVED, ":failed": FAILED, ":processing": PROCESSING}
            kwargs["ExpressionAttributeValues"] = {k: {"S": v} for k, v in values.items() if k in condition}
        # A failed condition means a later state already won: nothing to do, by design.
        with contextlib.suppress(self._ddb.exceptions.ConditionalCheckFailedException):
            self._ddb.put_item(**kwargs)

    def record_batch(self, item: dict[str, Any]) -> None:
        if item["status"] == PROCESSING:  # never over `completed`
            self._put(item, "attribute_not_exists(#id) OR #s = :processing")
        else:
            self._put(item)

    def record_received(self, entry: CatalogEntry, raw_uri: str) -> None:
        # Only into an empty slot: `received` never downgrades a later status, and a redelivered
        # `received` never drops a conversion that came early (the put would replace the whole item).
        self._put(
            received_item(entry, raw_uri), f"attribute_not_exists(#id) OR (#s = :received{_NO_CONVERSION})"
        )

    def record_parsed(self, entry: CatalogEntry, raw_uri: str, parsed_uri: str, findings: list[Any]) -> None:
        # parsed wins over everything, and keeps what converters added
        self._put(self._keeping_conversions([parsed_item(entry, raw_uri, parsed_uri, findings)])[0])

    def record_converted(self, message_id: str, format: str, uri: str) -> None:
        # An UpdateItem of this one key, where every other event puts the whole item: a conversion
        # knows nothing of the status (it may arrive before `parsed` is written, or after), so it must
        # not write one. Arriving first, it leaves an item with this key only (no status, no sortKey:
        # in no list); `received` then leaves that item alone, and `parsed` keeps the key
        # (`_keeping_conversions`): the item ends parsed with its conversion in any order.
        self._ddb.update_item(
            TableName=self._table,
            Key={"id": {"S": message_id}},
            UpdateExpression="SET #f = :uri, updatedAt = :now REMOVE #e",
            ExpressionAttributeNames={"#f": format, "#e": f"{format}Error"},
            ExpressionAttributeValues={":uri": {"S": uri}, ":now": {"S": utc_timestamp()}},
        )

    def record_conversion_failed(self, message_id: str, format: str, error: dict[str, Any]) -> None:
        # Same one-key update; a failure never replaces a successful conversion (a stale redelivery).
        with contextlib.suppress(self._ddb.exceptions.ConditionalCheckFailedException):
            self._ddb.update_item(
                TableName=self._table,
                Key={"id": {"S": message_id}},
                UpdateExpression="SET #e = :error, updatedAt = :now",
                ConditionExpression="attribute_not_exists(#f)",
                ExpressionAttributeNames={"#f": format, "#e": f"{format}Error"},
                ExpressionAttributeValues={
                    ":error": self._serializer.serialize(error),
                    ":now": {"S": utc_timestamp()},
                },
            )

    def _keeping_conversions(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Parsed items carrying the converter keys their stored items hold (a put replaces the whole
        item). One consistent BatchGetItem per 100 ids; the lake writer holds each id's lock from this
        read to the put, so its own conversion of the id cannot land in between."""
        ids = [
            item["id"] for item in items if item.get("status") == PARSED and item.get("kind") != BATCH_KIND
        ]
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), MAX_BATCH_GET):
            found.update(self._converted_keys(ids[start : start + MAX_BATCH_GET]))
        return [{**item, **found[item["id"]]} if item["id"] in found else item for item in items]

    def _converted_keys(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        request: dict[str, Any] = {
            "Keys": [{"id": {"S": i}} for i in dict.fromkeys(ids)],
            "ProjectionExpression": ", ".join(["#id", *_CONVERTED_NAMES]),
            "ExpressionAttributeNames": {"#id": "id", **_CONVERTED_NAMES},
            "ConsistentRead": True,
        }
        found: dict[str, dict[str, Any]] = {}
        deserializer = TypeDeserializer()
        for attempt in range(BATCH_WRITE_TRIES):
            if attempt:
                time.sleep(BATCH_WRITE_BACKOFF_SECONDS * 2 ** (attempt - 1))
            response = self._ddb.batch_get_item(RequestItems={self._table: request})
            for raw in response.get("Responses", {}).get(self._table, []):
                kept = {k: deserializer.deserialize(v) for k, v in raw.items() if k in CONVERTED_KEYS}
                if kept:
                    found[raw["id"]["S"]] = kept
            left = (response.get("UnprocessedKeys") or {}).get(self._table)
            if not left:
                return found
            request = left
        raise CatalogWriteError(f"catalog read of {len(ids)} ids unprocessed after {BATCH_WRITE_TRIES} tries")

    def record_failed(
        self, entry: CatalogEntry, raw_uri: str | None, error_uri: str, error: dict[str, Any]
    ) -> None:
        # Over nothing, `received` or an earlier failure; never over `parsed`.
        self._put(
            failed_item(entry, raw_uri, error_uri, error),
            "attribute_not_exists(#id) OR #s = :received OR #s = :failed",
        )

    def record_many(self, items: Sequence[dict[str, Any]]) -> list[BaseException | None]:
        """BatchWriteItem, 25 puts a call (it carries no conditions, hence unconditional items only; it
        refuses two puts of one key, hence one item per id). Unprocessed items are sent again a few
        times with a short back-off; one still unprocessed fails its item."""
        for item in items:
            if not is_unconditional(item):
                raise ValueError(f"record_many takes unconditional items only (id={item['id']})")
        kept = _last_per_id(items)
        errors: dict[str, BaseException] = {}
        ids = list(kept)
        try:
            carried = self._keeping_conversions(list(kept.values()))
        except Exception as exc:  # without the read a put could drop a conversion: fail them all
            return [exc] * len(items)
        kept = {item["id"]: item for item in carried}
        for start in range(0, len(ids), MAX_BATCH_WRITE):
            chunk = ids[start : start + MAX_BATCH_WRITE]
            try:
                left = self._write_chunk([kept[i] for i in chunk])
            except Exception as exc:  # the call itself failed: every item of this chunk fails
                errors.update(dict.fromkeys(chunk, exc))
                continue
            for message_id in left:
                errors[message_id] = CatalogWriteError(
                    f"catalog item id={message_id} unprocessed after {BATCH_WRITE_TRIES} tries"
                )
        return [errors.get(item["id"]) for item in items]

    def _write_chunk(self, items: list[dict[str, Any]]) -> list[str]:
        """Writes up to 25 items; returns the ids still unprocessed after every try."""
        stamp = utc_timestamp()
        requests = [
            {
                "PutRequest": {
                    "Item": {
                        k: self._serializer.serialize(v) for k, v in {**item, "updatedAt": stamp}.items()
                    }
                }
            }
            for item in items
        ]
        for attempt in range(BATCH_WRITE_TRIES):
            if attempt:
                time.sleep(BATCH_WRITE_BACKOFF_SECONDS * 2 ** (attempt - 1))
            response = self._ddb.batch_write_item(RequestItems={self._table: requests})
            requests = (response.get("UnprocessedItems") or {}).get(self._table) or []
            if not requests:
                return []
        return [request["PutRequest"]["Item"]["id"]["S"] for request in requests]
