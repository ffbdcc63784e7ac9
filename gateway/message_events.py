"""GET /v1/messages/{id}/events: a message's path (the steps kept with its catalog item, hub/steps.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def _instant(timestamp: str) -> datetime | None:
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None


def since_receipt_ms(received_at: str, done_at: str) -> int:
    """Milliseconds from the message's receipt to a step's end. Never negative: the steps come from
    several hosts, and a clock running behind the front door's must not make a step precede receipt."""
    start, end = _instant(received_at), _instant(done_at)
    if start is None or end is None:
        return 0
    return max(0, round((end - start).total_seconds() * 1000))


def _event(step: dict[str, Any], received_at: str) -> dict[str, Any]:
    return {
        "service": str(step.get("service", "")),
        "instance": str(step.get("instance", "")),
        "event": str(step.get("event", "")),
        "outcome": str(step.get("outcome", "")),
        "reason": None if step.get("reason") is None else str(step["reason"]),
        "receivedAt": str(step.get("receivedAt", "")),
        "doneAt": str(step.get("doneAt", "")),
        "tries": int(step.get("tries") or 1),
        "sinceReceiptMs": since_receipt_ms(received_at, str(step.get("doneAt", ""))),
    }


def events_view(item: dict[str, Any]) -> dict[str, Any]:
    """The answer for one catalog item: its steps in order (doneAt, then receivedAt)."""
    received_at = str(item.get("receivedAt", ""))
    steps = [s for s in item.get("steps") or [] if isinstance(s, dict)]
    steps.sort(key=lambda s: (str(s.get("doneAt", "")), str(s.get("receivedAt", ""))))
    return {"id": item["id"], "events": [_event(s, received_at) for s in steps]}
