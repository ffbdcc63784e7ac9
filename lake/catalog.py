"""The catalog: one DynamoDB item per message id, written idempotently and in any event order.

Status moves received → parsed | failed. A `received` event never downgrades a later status, and
a `failed` event never overrides `parsed`, so events may arrive in any order and any number of times.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Protocol

from boto3.dynamodb.types import TypeSerializer

from hub.events import utc_timestamp

RECEIVED, PARSED, FAILED = "received", "parsed", "failed"


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
        return data


class Catalog(Protocol):
    def record_received(self, entry: CatalogEntry, raw_uri: str) -> None: ...

    def record_parsed(self, entry: CatalogEntry, parsed_uri: str, findings: list[Any]) -> None: ...

    def record_failed(self, entry: CatalogEntry, error_uri: str, error: dict[str, Any]) -> None: ...


class DynamoCatalog:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def _update(
        self,
        entry: CatalogEntry,
        sets: dict[str, Any],
        *,
        status_if_absent: str | None = None,
        condition: str | None = None,
        remove: tuple[str, ...] = (),
    ) -> None:
        ser = TypeSerializer()
        values = {**entry.attributes(), **sets, "updatedAt": utc_timestamp()}
        names = {f"#a{i}": k for i, k in enumerate(values)}
        expr_values = {f":v{i}": ser.serialize(v) for i, v in enumerate(values.values())}
        clauses = [f"#a{i} = :v{i}" for i in range(len(values))]
        if status_if_absent or condition:
            names["#status"] = "status"
        if status_if_absent:
            expr_values[":initial"] = ser.serialize(status_if_absent)
            clauses.append("#status = if_not_exists(#status, :initial)")
        expression = "SET " + ", ".join(clauses)
        if remove:
            names.update({f"#r{i}": k for i, k in enumerate(remove)})
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"id": {"S": entry.id}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": expr_values,
        }
        if condition:
            expr_values[":parsed"] = ser.serialize(PARSED)
            kwargs["ConditionExpression"] = condition
        # A failed condition means a later state already won: nothing to do, by design.
        with contextlib.suppress(self._ddb.exceptions.ConditionalCheckFailedException):
            self._ddb.update_item(**kwargs)

    def record_received(self, entry: CatalogEntry, raw_uri: str) -> None:
        self._update(entry, {"raw": raw_uri}, status_if_absent=RECEIVED)

    def record_parsed(self, entry: CatalogEntry, parsed_uri: str, findings: list[Any]) -> None:
        sets: dict[str, Any] = {"status": PARSED, "parsed": parsed_uri}
        if findings:
            sets["findings"] = findings
        self._update(entry, sets, remove=("error", "errorLocation"))

    def record_failed(self, entry: CatalogEntry, error_uri: str, error: dict[str, Any]) -> None:
        self._update(
            entry,
            {"status": FAILED, "error": error, "errorLocation": error_uri},
            condition="attribute_not_exists(#status) OR #status <> :parsed",
        )


class MemoryCatalog:
    """Same semantics as DynamoCatalog, on a dict."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def _merge(self, entry: CatalogEntry, sets: dict[str, Any]) -> dict[str, Any]:
        item = self.items.setdefault(entry.id, {"id": entry.id})
        item.update(entry.attributes())
        item.update(sets)
        item["updatedAt"] = utc_timestamp()
        return item

    def record_received(self, entry: CatalogEntry, raw_uri: str) -> None:
        item = self._merge(entry, {"raw": raw_uri})
        item.setdefault("status", RECEIVED)

    def record_parsed(self, entry: CatalogEntry, parsed_uri: str, findings: list[Any]) -> None:
        sets: dict[str, Any] = {"status": PARSED, "parsed": parsed_uri}
        if findings:
            sets["findings"] = findings
        item = self._merge(entry, sets)
        item.pop("error", None)
        item.pop("errorLocation", None)

    def record_failed(self, entry: CatalogEntry, error_uri: str, error: dict[str, Any]) -> None:
        if self.items.get(entry.id, {}).get("status") == PARSED:
            return
        self._merge(entry, {"status": FAILED, "error": error, "errorLocation": error_uri})
