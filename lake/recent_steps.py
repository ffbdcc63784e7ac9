"""The lake writer's own steps per message id, remembered for a while (bounded, least recently used
out first): a `parsed` catalog item, which replaces the `received` one, keeps the `received` event's
lake-writer step when this process wrote it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from hub.steps import MAX_STEPS

MAX_IDS = 10_000


class RecentSteps:
    def __init__(self, max_ids: int = MAX_IDS) -> None:
        self._max_ids = max_ids
        self._steps: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, message_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._steps.get(message_id, ()))

    def add(self, message_id: str, step: dict[str, Any]) -> None:
        with self._lock:
            kept = self._steps.pop(message_id, [])
            self._steps[message_id] = [*kept, step][-MAX_STEPS:]
            while len(self._steps) > self._max_ids:
                self._steps.popitem(last=False)
