"""The one failure the mapping reports: a message it cannot turn into a valid Bundle."""

from __future__ import annotations

from typing import Any


class MappingError(Exception):
    """A message that cannot be mapped; the worker publishes ``message.failed`` with stage ``fhir``.

    ``segment_index`` is the segment's 1-based position in the message (the MSH is 1), ``field`` the HL7
    position (``OBX-3``) when one field is to blame.
    """

    def __init__(
        self,
        reason: str,
        *,
        segment: str | None = None,
        segment_index: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.segment = segment
        self.segment_index = segment_index
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stage": "fhir",
            "reason": self.reason,
            "segment": self.segment,
            "segmentIndex": self.segment_index,
            "field": self.field,
        }
        return {key: value for key, value in out.items() if value is not None}

    def __str__(self) -> str:
        where = self.field or self.segment
        return f"{where} (segment {self.segment_index}): {self.reason}" if where else self.reason
