"""In-memory read side of the lake for the gateway's read API."""

from __future__ import annotations

from typing import Any

from gateway.lake_reader import matches, merge_pages, narrowed


class MemoryLakeReader:
    def __init__(
        self, items: dict[str, dict[str, Any]] | None = None, objects: dict[str, bytes] | None = None
    ) -> None:
        self.items = items if items is not None else {}
        self.objects = objects if objects is not None else {}

    def get(self, message_id: str) -> dict[str, Any] | None:
        return self.items.get(message_id)

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
        selected = [
            i
            for i in self.items.values()
            if i.get("source") in narrowed(sources, source)
            and matches(i, status, message_type)
            and (before is None or i["sortKey"] < before)
            and (since is None or i["sortKey"] >= since)
        ]
        return merge_pages([selected], limit, False)

    def read_object(self, uri: str) -> bytes | None:
        return self.objects.get(uri)
