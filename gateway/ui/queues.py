"""Waiting, in-flight and dead-lettered events per subscription (SQS GetQueueAttributes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class QueueDepth:
    subscription: str
    waiting: int
    in_flight: int
    dead_letters: int


class QueueDepthReader(Protocol):
    def depths(self) -> list[QueueDepth]: ...


_COUNTS = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


class SqsQueueDepths:
    """``queues``: subscription name → (queue URL, DLQ URL)."""

    def __init__(self, sqs: Any, queues: Mapping[str, tuple[str, str]]) -> None:
        self._sqs = sqs
        self._queues = dict(queues)

    def _counts(self, url: str) -> dict[str, int]:
        attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=_COUNTS)["Attributes"]
        return {name: int(attributes.get(name, 0)) for name in _COUNTS}

    def depths(self) -> list[QueueDepth]:
        found = []
        for name, (url, dlq_url) in sorted(self._queues.items()):
            main, dead = self._counts(url), self._counts(dlq_url)
            found.append(
                QueueDepth(
                    subscription=name,
                    waiting=main[_COUNTS[0]] + main[_COUNTS[2]],
                    in_flight=main[_COUNTS[1]],
                    dead_letters=sum(dead.values()),
                )
            )
        return found
