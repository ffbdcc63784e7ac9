"""The one error type of the ER7 codec: a reason plus where in the message it happened."""

from __future__ import annotations

from typing import Any


class Er7Error(ValueError):
    """A message that cannot be read, located as precisely as the reader could.

    ``segment_index`` is the 1-based position of the segment in the (normalized) message,
    ``field`` uses HL7's notation (``MSH-9``, ``PID-3[2].1``).
    """

    def __init__(
        self,
        reason: str,
        *,
        segment_index: int | None = None,
        segment_id: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.segment_index = segment_index
        self.segment_id = segment_id
        self.field = field

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
            self.segment_id = segment_id
        if self.field is None:
            self.field = field
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
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
        return (_rebuild, (self.reason, self.segment_index, self.segment_id, self.field))


def _rebuild(reason: str, segment_index: int | None, segment_id: str | None, field: str | None) -> Er7Error:
    return Er7Error(reason, segment_index=segment_index, segment_id=segment_id, field=field)
