"""An in-memory SQS with the behaviour the consumer relies on: receive (visibility timeout, receive
count, message attributes), send (with DelaySeconds), batch delete and visibility changes. The
consumer's contract test runs the same cases on it and on moto's SQS."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Message:
    id: str
    body: str
    attributes: dict[str, Any]
    visible_at: float
    receives: int = 0
    handle: str = ""


@dataclass
class MemorySqs:
    clock: Callable[[], float] = time.monotonic
    visibility_timeout: int = 60
    queues: dict[str, list[_Message]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def create_queue(self, QueueName: str) -> dict[str, str]:
        url = f"memory://{QueueName}"
        self.queues.setdefault(url, [])
        return {"QueueUrl": url}

    def send_message(
        self, QueueUrl: str, MessageBody: str, MessageAttributes: Any = None, DelaySeconds: int = 0
    ) -> dict[str, str]:
        message_id = f"m{next(self._ids)}"
        self.queues[QueueUrl].append(
            _Message(message_id, MessageBody, dict(MessageAttributes or {}), self.clock() + DelaySeconds)
        )
        return {"MessageId": message_id}

    def receive_message(self, QueueUrl: str, MaxNumberOfMessages: int = 1, **_: Any) -> dict[str, Any]:
        now, found = self.clock(), list[dict[str, Any]]()
        for message in self.queues[QueueUrl]:
            if len(found) == MaxNumberOfMessages:
                break
            if message.visible_at <= now:
                message.receives += 1
                message.visible_at = now + self.visibility_timeout
                message.handle = f"{message.id}-{message.receives}"
                found.append(
                    {
                        "MessageId": message.id,
                        "ReceiptHandle": message.handle,
                        "Body": message.body,
                        "Attributes": {"ApproximateReceiveCount": str(message.receives)},
                        "MessageAttributes": dict(message.attributes),
                    }
                )
        return {"Messages": found} if found else {}

    def _by_handle(self, url: str, handle: str) -> _Message | None:
        return next((m for m in self.queues[url] if m.handle == handle), None)

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        handles = {e["ReceiptHandle"] for e in Entries}
        self.queues[QueueUrl] = [m for m in self.queues[QueueUrl] if m.handle not in handles]
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}

    def change_message_visibility(self, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int) -> None:
        message = self._by_handle(QueueUrl, ReceiptHandle)
        if message is not None:
            message.visible_at = self.clock() + VisibilityTimeout

    def change_message_visibility_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        for entry in Entries:
            self.change_message_visibility(QueueUrl, entry["ReceiptHandle"], entry["VisibilityTimeout"])
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}
