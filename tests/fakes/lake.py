"""In-memory lake: the catalog's order rules (lake.catalog) on a dict, and an object store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hub.events import utc_timestamp
from lake.catalog import (
    CONVERTED_KEYS,
    FAILED,
    PARSED,
    PROCESSING,
    RECEIVED,
    CatalogEntry,
    _last_per_id,
    failed_item,
    is_unconditional,
    parsed_item,
    received_item,
)


class MemoryObjectStore:
    def __init__(self, bucket: str = "memory-lake") -> None:
        self.bucket = bucket
        self.objects: dict[str, tuple[bytes, str]] = {}

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.objects[key] = (body, content_type)


class MemoryCatalog:
    """Same semantics as DynamoCatalog, on a dict."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def _put(
        self, item: dict[str, Any], over: tuple[str | None, ...] | None = None, *, converted: bool = True
    ) -> None:
        """``over``: the statuses it may replace (None: no item yet; an item holding only a conversion
        has no status and is in no ``over``); ``converted=False``: not over an item with a conversion."""
        stored = self.items.get(item["id"])
        current = stored.get("status", "<none>") if stored is not None else None
        if over is not None and current not in over:
            return
        kept = {k: v for k, v in (stored or {}).items() if k in CONVERTED_KEYS}
        if kept and not converted:
            return
        if item.get("status") != PARSED or item.get("kind") is not None:
            kept = {}
        self.items[item["id"]] = {**item, **kept, "updatedAt": utc_timestamp()}

    def record_converted(self, message_id: str, format: str, uri: str) -> None:
        item = self.items.setdefault(message_id, {"id": message_id})
        item.pop(f"{format}Error", None)
        item.update({format: uri, "updatedAt": utc_timestamp()})

    def record_conversion_failed(self, message_id: str, format: str, error: dict[str, Any]) -> None:
        item = self.items.setdefault(message_id, {"id": message_id})
        if format not in item:
            item.update({f"{format}Error": error, "updatedAt": utc_timestamp()})

    def record_batch(self, item: dict[str, Any]) -> None:
        self._put(item, over=(None, PROCESSING) if item["status"] == PROCESSING else None)

    def record_received(self, entry: CatalogEntry, raw_uri: str) -> None:
        self._put(received_item(entry, raw_uri), over=(None, RECEIVED), converted=False)

    def record_parsed(self, entry: CatalogEntry, raw_uri: str, parsed_uri: str, findings: list[Any]) -> None:
        self._put(parsed_item(entry, raw_uri, parsed_uri, findings))

    def record_failed(
        self, entry: CatalogEntry, raw_uri: str | None, error_uri: str, error: dict[str, Any]
    ) -> None:
        self._put(failed_item(entry, raw_uri, error_uri, error), over=(None, RECEIVED, FAILED))

    def record_many(self, items: Sequence[dict[str, Any]]) -> list[BaseException | None]:
        for item in items:
            if not is_unconditional(item):
                raise ValueError(f"record_many takes unconditional items only (id={item['id']})")
        for item in _last_per_id(items).values():
            self._put(item)
        return [None] * len(items)
