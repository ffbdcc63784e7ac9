"""Back-pressure: the front door refuses new work (503 + Retry-After) while the hub's subscribers are
too far behind, instead of acknowledging messages the pipeline cannot finish.

The depth of every subscription queue is read in the background at most every ``refresh_seconds``
(one cheap GetQueueAttributes per queue); requests only read the cached figure. When the figure
cannot be read (AWS down), nothing is refused on its account: the ingest's own calls fail then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

DepthReader = Callable[[], Mapping[str, int]]


@dataclass(frozen=True)
class Backlog:
    depths: Mapping[str, int]
    limit: int
    measured_at: float | None  # monotonic seconds; None: never measured

    @property
    def behind(self) -> list[str]:
        return sorted(name for name, depth in self.depths.items() if depth > self.limit)

    def to_dict(self) -> dict[str, Any]:
        return {"limit": self.limit, "waiting": dict(self.depths), "behind": self.behind}


class BacklogMonitor:
    def __init__(
        self,
        read_depths: DepthReader,
        limit: int,
        *,
        refresh_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read_depths
        self._limit = limit
        self._refresh = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._refreshing = False
        self._current = Backlog({}, limit, None)

    def current(self) -> Backlog:
        """The last figure; starts a background refresh when it is stale (never blocks a request)."""
        with self._lock:
            current = self._current
            stale = current.measured_at is None or self._clock() - current.measured_at >= self._refresh
            start = stale and not self._refreshing
            if start:
                self._refreshing = True
        if start:
            threading.Thread(target=self.refresh, name="backlog-refresh", daemon=True).start()
        return current

    def refresh(self) -> Backlog:
        try:
            depths = dict(self._read())
        except Exception as exc:
            log.warning("backlog unreadable error=%s", exc.__class__.__name__)
            depths = {}
        backlog = Backlog(depths, self._limit, self._clock())
        with self._lock:
            self._current = backlog
            self._refreshing = False
        if backlog.behind:
            log.warning("hub backlog over limit queues=%s limit=%d", ",".join(backlog.behind), self._limit)
        return backlog


def sqs_depth_reader(sqs: Any, queue_urls: Mapping[str, str]) -> DepthReader:
    """Messages waiting (visible or delayed for a retry) in each subscriber's queue."""

    def read() -> dict[str, int]:
        depths: dict[str, int] = {}
        for name, url in queue_urls.items():
            attributes = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
            )["Attributes"]
            depths[name] = int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
                attributes.get("ApproximateNumberOfMessagesDelayed", 0)
            )
        return depths

    return read
