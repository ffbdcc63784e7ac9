"""Throughput and failures over the last hour, from the catalog items the user may read, as SVG bars."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.lake_reader import LakeReader

WINDOW = timedelta(hours=1)
BUCKET = timedelta(minutes=5)
PAGE = 100
MAX_PAGES = 20  # at most 2,000 items read per view; the chart says when it was cut short


@dataclass(frozen=True)
class Bar:
    start: datetime
    received: int
    failed: int


@dataclass(frozen=True)
class Activity:
    bars: list[Bar]
    total: int
    failed: int
    truncated: bool

    @property
    def peak(self) -> int:
        return max((bar.received for bar in self.bars), default=0)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def recent_items(
    reader: LakeReader, sources: tuple[str, ...], since: datetime
) -> tuple[list[dict[str, Any]], bool]:
    """Items received since ``since``, newest first; True when more were left unread."""
    found: list[dict[str, Any]] = []
    before: str | None = None
    for _ in range(MAX_PAGES):
        items, before = reader.page(sources, None, None, PAGE, before)
        for item in items:
            received = parse_time(item.get("receivedAt"))
            if received is None or received < since:
                return found, False
            found.append(item)
        if before is None:
            return found, False
    return found, True


def bucketed(items: Iterable[dict[str, Any]], now: datetime, truncated: bool = False) -> Activity:
    buckets = int(WINDOW / BUCKET)
    start = now - WINDOW
    received, failed = [0] * buckets, [0] * buckets
    for item in items:
        at = parse_time(item.get("receivedAt"))
        if at is None or not start <= at <= now:
            continue
        slot = min(int((at - start) / BUCKET), buckets - 1)
        received[slot] += 1
        failed[slot] += item.get("status") == "failed"
    bars = [Bar(start + i * BUCKET, received[i], failed[i]) for i in range(buckets)]
    return Activity(bars, sum(received), sum(failed), truncated)


def last_hour(reader: LakeReader, sources: tuple[str, ...], clock: Callable[[], datetime]) -> Activity:
    now = clock()
    if not sources:
        return bucketed([], now)
    items, truncated = recent_items(reader, sources, now - WINDOW)
    return bucketed(items, now, truncated)
