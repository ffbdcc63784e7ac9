"""What the resource mappers share while one message becomes one Bundle."""

from __future__ import annotations

import uuid
from typing import Any

from workers.fhir.mapping import timestamps
from workers.fhir.mapping.segment import SegmentView

JSON = dict[str, Any]
# uuid5 namespace of every fullUrl: the same message id and segment position give the same fullUrl
FULL_URL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://hl7lake.example/fhir/fullUrl")


class Context:
    def __init__(self, message_id: str, message_type: str, msh7: str | None) -> None:
        self.message_id = message_id
        self.message_type = message_type
        self.default_offset = timestamps.message_offset(msh7)
        self.entries: list[JSON] = []
        self.patient: JSON | None = None  # Reference to the current Patient
        self.encounter: JSON | None = None
        self.unmapped: dict[str, list[int]] = {}

    def full_url(self, seg: SegmentView, resource_type: str) -> str:
        name = f"{self.message_id}/{seg.index}/{resource_type}"
        return f"urn:uuid:{uuid.uuid5(FULL_URL_NAMESPACE, name)}"

    def add(self, seg: SegmentView, resource: JSON, if_none_exist: str | None = None) -> JSON:
        """Adds a POST entry; returns a Reference to it."""
        url = self.full_url(seg, resource["resourceType"])
        request = {"method": "POST", "url": resource["resourceType"]}
        if if_none_exist:
            request["ifNoneExist"] = if_none_exist
        self.entries.append({"fullUrl": url, "resource": resource, "request": request})
        return {"reference": url}

    def skip(self, seg: SegmentView) -> None:
        self.unmapped.setdefault(seg.id, []).append(seg.index)

    def require_patient(self, seg: SegmentView) -> JSON:
        if self.patient is None:
            raise seg.error(f"{seg.id} needs a patient and no PID comes before it")
        return self.patient

    def date(self, seg: SegmentView, field: int, comp: int = 1) -> str | None:
        value = seg.value(field, comp)
        if not value:
            return None
        try:
            return timestamps.to_date(value)
        except timestamps.TimestampError as err:
            raise seg.error(str(err), field) from None

    def datetime(self, seg: SegmentView, field: int, comp: int = 1) -> str | None:
        value = seg.value(field, comp)
        if not value:
            return None
        try:
            return timestamps.to_datetime(value, self.default_offset)
        except timestamps.TimestampError as err:
            raise seg.error(str(err), field) from None

    def instant(self, seg: SegmentView, field: int, comp: int = 1) -> str | None:
        value = seg.value(field, comp)
        if not value:
            return None
        try:
            return timestamps.to_instant(value, self.default_offset)
        except timestamps.TimestampError as err:
            raise seg.error(str(err), field) from None
