"""Test data shared by several test modules."""

from __future__ import annotations

from hub.events import Envelope, Event, Format


def received_envelope(
    payload: str, message_id: str = "01JTEST0000000000000000001", source: str = "hospital-a"
) -> Envelope:
    """A `message.received` event as the gateway publishes it."""
    return Envelope(
        event=Event.RECEIVED,
        id=message_id,
        source=source,
        received_at="2026-01-02T03:04:05.000Z",
        message_type="ADT^A01",
        control_id="CTRL-1",
        format=Format.ER7,
        payload=payload,
        digest="d" * 64,
    )
