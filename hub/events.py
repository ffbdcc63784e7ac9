"""The hub's contract: event names, message attributes and the JSON envelope every event carries.

An event is one SNS message. Its body is the envelope (JSON); its message attributes repeat the
fields subscribers filter on. AWS delivers at most 10 attributes to SQS, so the set is fixed here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

ENVELOPE_VERSION = 1
PROTOCOL_HL7V2 = "hl7v2"


class Event(StrEnum):
    RECEIVED = "message.received"
    PARSED = "message.parsed"
    FAILED = "message.failed"
    # A large batch body accepted as a whole (claim check), split into messages by the front door's
    # batch splitter; then the per-message outcomes.
    BATCH_RECEIVED = "batch.received"
    BATCH_COMPLETED = "batch.completed"
    # A parsed message in another format (payload: e.g. a FHIR R4 Bundle); the catalog status stays.
    CONVERTED = "message.converted"


class Format(StrEnum):
    ER7 = "er7"
    JSON = "json"
    TEXT = "text"
    FHIR = "fhir"  # a FHIR R4 Bundle (JSON)


class Attr(StrEnum):
    """Message attribute names (filter policies refer to these)."""

    EVENT = "event"
    PROTOCOL = "protocol"
    FORMAT = "format"
    MESSAGE_TYPE = "messageType"
    SOURCE = "source"
    MESSAGE_ID = "messageId"
    # W3C trace context (hub/telemetry.py); sent only when the envelope carries one.
    TRACEPARENT = "traceparent"


MAX_ATTRIBUTES = 10
assert len(Attr) <= MAX_ATTRIBUTES


def utc_timestamp() -> str:
    """The hub's timestamps (receivedAt, updatedAt): UTC, milliseconds, `Z` suffix; they sort as text."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# The core fields as spelled on the wire; `extra` may add keys beside them, never one of these.
WIRE_FIELDS = frozenset(
    {
        "version",
        "event",
        "protocol",
        "id",
        "source",
        "receivedAt",
        "messageType",
        "controlId",
        "format",
        "digest",
        "flags",
        "error",
        "batch",
        "payload",
        "payloadRef",
    }
)


class EnvelopeError(ValueError):
    """A hub message that is not a valid envelope (never retried: it cannot get better)."""


@dataclass(frozen=True)
class PayloadRef:
    bucket: str
    key: str
    size: int


@dataclass(frozen=True)
class Envelope:
    event: Event
    id: str
    source: str
    received_at: str
    message_type: str
    control_id: str
    format: Format
    payload: Any = None
    payload_ref: PayloadRef | None = None
    digest: str | None = None
    flags: tuple[str, ...] = ()
    error: dict[str, Any] | None = None
    batch: dict[str, Any] | None = None
    protocol: str = PROTOCOL_HL7V2
    version: int = ENVELOPE_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    # Not in the body: travels as the `traceparent` message attribute (derived events keep it).
    traceparent: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # to_dict writes extra after the core fields: a colliding key would silently replace one
        colliding = sorted(WIRE_FIELDS.intersection(self.extra)) if self.extra else None
        if colliding:
            raise ValueError(f"envelope extra must not set core fields: {', '.join(colliding)}")

    def attributes(self) -> dict[str, str]:
        attributes: dict[str, str] = {
            Attr.EVENT: self.event.value,
            Attr.PROTOCOL: self.protocol,
            Attr.FORMAT: self.format.value,
            Attr.MESSAGE_TYPE: self.message_type or "unknown",
            Attr.SOURCE: self.source,
            Attr.MESSAGE_ID: self.id,
        }
        if self.traceparent:
            attributes[Attr.TRACEPARENT] = self.traceparent
        return attributes

    def derive(self, event: Event, format: Format, **changes: Any) -> Envelope:
        """The next event about the same message (keeps id, source, type, timestamps)."""
        base = replace(self, event=event, format=format, payload=None, payload_ref=None, error=None)
        return replace(base, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "version": self.version,
            "event": self.event.value,
            "protocol": self.protocol,
            "id": self.id,
            "source": self.source,
            "receivedAt": self.received_at,
            "messageType": self.message_type,
            "controlId": self.control_id,
            "format": self.format.value,
            "digest": self.digest,
            "flags": list(self.flags),
            "error": self.error,
            "batch": self.batch,
            "payload": self.payload,
            "payloadRef": asdict(self.payload_ref) if self.payload_ref else None,
        }
        data.update(self.extra)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, body: str) -> Envelope:
        try:
            data = json.loads(body)
            ref = data.get("payloadRef")
            return cls(
                version=int(data["version"]),
                event=Event(data["event"]),
                protocol=data.get("protocol", PROTOCOL_HL7V2),
                id=str(data["id"]),
                source=str(data["source"]),
                received_at=str(data["receivedAt"]),
                message_type=str(data.get("messageType") or ""),
                control_id=str(data.get("controlId") or ""),
                format=Format(data["format"]),
                digest=data.get("digest"),
                flags=tuple(data.get("flags") or ()),
                error=data.get("error"),
                batch=data.get("batch"),
                payload=data.get("payload"),
                payload_ref=PayloadRef(**ref) if ref else None,
                extra={k: v for k, v in data.items() if k not in WIRE_FIELDS},
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise EnvelopeError(f"not a hub envelope: {exc.__class__.__name__}: {exc}") from None
