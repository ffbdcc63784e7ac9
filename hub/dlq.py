"""Dead-letter queues: what is in them (ids and reasons, never bodies) and putting it back to work.

Two ways into a DLQ: the consumer dead-letters a message itself after N handler failures (or at
once when it is not an envelope), with the attributes ``reason`` and ``failures``; SQS's own
redrive moves a message received ``maxReceiveCount`` times without an outcome, with neither.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from hub.er7.errors import value_free
from hub.events import Envelope, EnvelopeError

# The consumer's bookkeeping: a redriven message starts over with no failures behind it.
REASON_ATTRIBUTE, FAILURES_ATTRIBUTE = "reason", "failures"
PEEK_VISIBILITY_SECONDS = 60
# Redrive holds what it leaves behind invisible until the run ends, then shows it again.
REDRIVE_VISIBILITY_SECONDS = 120


@dataclass(frozen=True)
class DeadLetter:
    message_id: str | None
    event: str | None
    receive_count: int
    reason: str | None
    failures: int | None = None

    def explanation(self) -> str:
        """Why it is here: the consumer's recorded reason, or SQS's redrive when there is none."""
        if self.reason:
            return self.reason
        return f"moved by SQS after {self.receive_count} receives (no handler failure recorded)"


@dataclass
class RedriveReport:
    redriven: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"redriven": self.redriven, "skipped": self.skipped}


def _string_attribute(message: dict[str, Any], name: str) -> str | None:
    value = message.get("MessageAttributes", {}).get(name, {}).get("StringValue")
    return None if value is None else str(value)


def _describe(message: dict[str, Any]) -> DeadLetter:
    try:
        body = json.loads(message["Body"])
        message_id, event = body.get("id"), body.get("event")
    except (ValueError, AttributeError):
        message_id, event = None, None
    failures = _string_attribute(message, FAILURES_ATTRIBUTE)
    # this look is a receive too: it is not one of the tries that brought the message here
    count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1")) - 1
    return DeadLetter(
        message_id,
        event,
        max(count, 0),
        _string_attribute(message, REASON_ATTRIBUTE),
        int(failures) if failures and failures.isdigit() else None,
    )


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
                VisibilityTimeout=PEEK_VISIBILITY_SECONDS,
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not messages:
                break
            found.extend(_describe(m) for m in messages)
            handles.extend(m["ReceiptHandle"] for m in messages)
    finally:
        _show_again(sqs, dlq_url, handles)
    return found


def approximate_count(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def redrive(sqs: Any, dlq_url: str, queue_url: str, limit: int = 10_000) -> RedriveReport:
    """Moves what the DLQ held when the run started back to the worker's queue; send first, then delete:
    a crash duplicates, never loses.

    Left in the DLQ (and reported): bodies that are not hub envelopes (they can never succeed), and
    a message that came back to the DLQ during this run (the consumer failed it again at once).
    """
    report = RedriveReport()
    snapshot = min(limit, approximate_count(sqs, dlq_url))
    seen_ids: set[str] = set()
    moved_bodies: set[str] = set()
    left: list[str] = []
    try:
        while len(seen_ids) < snapshot:
            messages = _receive_for_redrive(sqs, dlq_url, snapshot - len(seen_ids))
            fresh = [m for m in messages if m["MessageId"] not in seen_ids]
            if not fresh:
                break
            for message in fresh:
                seen_ids.add(message["MessageId"])
                skip = _why_not_redrivable(message, moved_bodies)
                if skip is None:
                    _move(sqs, message, dlq_url, queue_url)
                    moved_bodies.add(_digest(message["Body"]))
                    report.redriven += 1
                else:
                    left.append(message["ReceiptHandle"])
                    report.skipped.append({"messageId": message["MessageId"], "reason": skip})
    finally:
        _show_again(sqs, dlq_url, left)
    return report


def _receive_for_redrive(sqs: Any, dlq_url: str, wanted: int) -> list[dict[str, Any]]:
    response = sqs.receive_message(
        QueueUrl=dlq_url,
        MaxNumberOfMessages=max(1, min(10, wanted)),
        MessageAttributeNames=["All"],
        VisibilityTimeout=REDRIVE_VISIBILITY_SECONDS,
        WaitTimeSeconds=0,
    )
    return list(response.get("Messages", []))


def _why_not_redrivable(message: dict[str, Any], moved_bodies: set[str]) -> str | None:
    if _digest(message["Body"]) in moved_bodies:
        return "dead-lettered again during this redrive"
    try:
        Envelope.from_json(message["Body"])
    except EnvelopeError as exc:
        return value_free(str(exc))
    return None


def _move(sqs: Any, message: dict[str, Any], dlq_url: str, queue_url: str) -> None:
    attributes = {
        k: v
        for k, v in message.get("MessageAttributes", {}).items()
        if k not in (REASON_ATTRIBUTE, FAILURES_ATTRIBUTE)
    }
    kwargs: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": message["Body"]}
    if attributes:
        kwargs["MessageAttributes"] = attributes
    sqs.send_message(**kwargs)
    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])


def _show_again(sqs: Any, queue_url: str, handles: list[str]) -> None:
    for handle in handles:
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=handle, VisibilityTimeout=0)


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()
