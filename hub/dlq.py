"""Dead-letter queues: what is in them (ids and reasons, never bodies) and putting it back to work."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeadLetter:
    message_id: str | None
    event: str | None
    receive_count: int
    reason: str | None


def _describe(message: dict[str, Any]) -> DeadLetter:
    try:
        body = json.loads(message["Body"])
        message_id, event = body.get("id"), body.get("event")
    except (ValueError, AttributeError):
        message_id, event = None, None
    reason = message.get("MessageAttributes", {}).get("reason", {}).get("StringValue")
    count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "0"))
    return DeadLetter(message_id, event, count, reason)


def peek(sqs: Any, dlq_url: str, limit: int = 100) -> list[DeadLetter]:
    """Reads without removing: on SQS a look is a receive, so each message is made visible again after."""
    found: list[DeadLetter] = []
    handles: list[str] = []
    try:
        while len(found) < limit:
            messages = sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=min(10, limit - len(found)),
                AttributeNames=["ApproximateReceiveCount"],
                MessageAttributeNames=["All"],
                VisibilityTimeout=60,
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not messages:
                break
            found.extend(_describe(m) for m in messages)
            handles.extend(m["ReceiptHandle"] for m in messages)
    finally:
        for handle in handles:
            sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=handle, VisibilityTimeout=0)
    return found


def redrive(sqs: Any, dlq_url: str, queue_url: str, limit: int = 10_000) -> int:
    """Moves messages back to the worker's queue; send first, then delete: a crash duplicates, never loses."""
    moved = 0
    while moved < limit:
        messages = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return moved
        for message in messages:
            attributes = {k: v for k, v in message.get("MessageAttributes", {}).items() if k != "reason"}
            kwargs: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": message["Body"]}
            if attributes:
                kwargs["MessageAttributes"] = attributes
            sqs.send_message(**kwargs)
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    return moved
