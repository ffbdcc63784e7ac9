"""The one error type of the ER7 codec: a reason plus where in the message it happened.

A reason travels far (HTTP 400 bodies, ACKs, failed events, the catalog, logs), so it names
positions, codes and lengths, never the message's values. ``value_free`` enforces that for every
reason, whoever built it: quoted text longer than a delimiter set and long unbroken runs become
their length, and the whole reason is capped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

MAX_REASON_CHARS = 300
MAX_LOCATION_CHARS = 40
# MSH-2 is the longest thing a reason may quote (delimiters, not values): 5 characters, 6 once repr
# has doubled the escape character.
MAX_QUOTED_CHARS = 6
MAX_TOKEN_CHARS = 32

_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", re.DOTALL)
_LONG_TOKEN = re.compile(rf"\S{{{MAX_TOKEN_CHARS + 1},}}")


def value_free(reason: str) -> str:
    """The reason with anything that could be a message value replaced by its length, capped."""
    text = _QUOTED.sub(_quoted_length, reason)
    text = _LONG_TOKEN.sub(lambda m: _length(len(m.group())), text)
    return _cap(text, MAX_REASON_CHARS)


def _quoted_length(match: re.Match[str]) -> str:
    inner = match.group()[1:-1]
    return match.group() if len(inner) <= MAX_QUOTED_CHARS else _length(len(inner))


def _length(n: int) -> str:
    return f"<{n} chars>"


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _bounded(location: str | None) -> str | None:
    return None if location is None else _cap(value_free(location), MAX_LOCATION_CHARS)


class ErrorCode(IntEnum):
    """HL7 table 0357, message error condition codes (ERR-3 in an ACK)."""

    SEGMENT_SEQUENCE_ERROR = 100
    REQUIRED_FIELD_MISSING = 101
    DATA_TYPE_ERROR = 102
    TABLE_VALUE_NOT_FOUND = 103
    UNSUPPORTED_MESSAGE_TYPE = 200
    UNSUPPORTED_EVENT_CODE = 201
    UNSUPPORTED_PROCESSING_ID = 202
    UNSUPPORTED_VERSION_ID = 203
    UNKNOWN_KEY_IDENTIFIER = 204
    DUPLICATE_KEY_IDENTIFIER = 205
    APPLICATION_RECORD_LOCKED = 206
    APPLICATION_INTERNAL_ERROR = 207

    @property
    def text(self) -> str:
        """The table's description, as ERR-3.2 writes it."""
        return _CODE_TEXTS[self]


_CODE_TEXTS = {
    ErrorCode.SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    ErrorCode.REQUIRED_FIELD_MISSING: "Required field missing",
    ErrorCode.DATA_TYPE_ERROR: "Data type error",
    ErrorCode.TABLE_VALUE_NOT_FOUND: "Table value not found",
    ErrorCode.UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    ErrorCode.UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    ErrorCode.UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    ErrorCode.UNSUPPORTED_VERSION_ID: "Unsupported version id",
    ErrorCode.UNKNOWN_KEY_IDENTIFIER: "Unknown key identifier",
    ErrorCode.DUPLICATE_KEY_IDENTIFIER: "Duplicate key identifier",
    ErrorCode.APPLICATION_RECORD_LOCKED: "Application record locked",
    ErrorCode.APPLICATION_INTERNAL_ERROR: "Application internal error",
}


@dataclass(frozen=True)
class Location:
    """Where in a message an error is: segment id, its 1-based position, field in HL7 notation."""

    segment: str | None = None
    segment_index: int | None = None
    field: str | None = None


@dataclass(frozen=True)
class ErrorCondition:
    """An error as an ACK's ERR segment reports it: HL7 code, value-free reason, location."""

    code: ErrorCode
    reason: str
    location: Location = Location()


class Er7Error(ValueError):
    """A message that cannot be read, located as precisely as the reader could.

    ``segment_index`` is the 1-based position of the segment in the (normalized) message,
    ``field`` uses HL7's notation (``MSH-9``, ``PID-3[2].1``). ``code`` is the HL7 error condition
    when the reader knows it; otherwise ``error_code`` derives it from the location.
    """

    def __init__(
        self,
        reason: str,
        *,
        segment_index: int | None = None,
        segment_id: str | None = None,
        field: str | None = None,
        code: ErrorCode | None = None,
    ) -> None:
        safe = value_free(reason)
        super().__init__(safe)
        self.reason = safe
        self.code = code
        self.segment_index = segment_index
        self.segment_id = _bounded(segment_id)
        self.field = _bounded(field)

    def locate(
        self,
        *,
        segment_index: int | None = None,
        segment_id: str | None = None,
        field: str | None = None,
    ) -> Er7Error:
        """Fill in location parts that are still unknown; returns self for ``raise err.locate(...)``."""
        if self.segment_index is None:
            self.segment_index = segment_index
        if self.segment_id is None:
            self.segment_id = _bounded(segment_id)
        if self.field is None:
            self.field = _bounded(field)
        return self

    @property
    def error_code(self) -> ErrorCode:
        """The HL7 error condition: as raised, else a data type error when a field is known."""
        if self.code is not None:
            return self.code
        return ErrorCode.DATA_TYPE_ERROR if self.field else ErrorCode.APPLICATION_INTERNAL_ERROR

    @property
    def location(self) -> Location:
        return Location(self.segment_id, self.segment_index, self.field)

    @property
    def condition(self) -> ErrorCondition:
        return ErrorCondition(self.error_code, value_free(self.reason), self.location)

    def to_dict(self) -> dict[str, Any]:
        """Bounded and value-free even if ``reason`` was reassigned after construction."""
        return {
            "reason": value_free(self.reason),
            "segment": self.segment_id,
            "segmentIndex": self.segment_index,
            "field": self.field,
        }

    def __str__(self) -> str:
        where: list[str] = []
        if self.segment_index is not None:
            where.append(
                f"segment {self.segment_index}" + (f" ({self.segment_id})" if self.segment_id else "")
            )
        elif self.segment_id:
            where.append(f"segment {self.segment_id}")
        if self.field:
            where.append(f"field {self.field}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason

    def __reduce__(self) -> tuple[Any, ...]:
        # keyword-only attributes would be lost by ValueError's default pickling
        return (_rebuild, (self.reason, self.segment_index, self.segment_id, self.field, self.code))


def _rebuild(
    reason: str,
    segment_index: int | None,
    segment_id: str | None,
    field: str | None,
    code: ErrorCode | None = None,
) -> Er7Error:
    return Er7Error(reason, segment_index=segment_index, segment_id=segment_id, field=field, code=code)
