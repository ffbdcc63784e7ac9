"""HL7 v2 → FHIR R4 mapping (PLACEHOLDER: MSH → MessageHeader, PID-3/5/7/8 → Patient).

The full mapping (V2-to-FHIR IG segment and datatype maps) replaces this module with the same
interface: ``MAPPED_TYPES``, ``MappingError``, ``convert``.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from hub.document import ParsedDocument

MAPPED_TYPES: frozenset[str] = frozenset({"ADT^A01", "ADT^A03", "ADT^A04", "ADT^A08", "ORU^R01", "VXU^V04"})
_GENDERS = {"M": "male", "F": "female", "O": "other", "U": "unknown"}


class MappingError(Exception):
    """A message this mapping cannot convert, located like a parse error (positions, never values)."""

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
        return {
            "stage": "fhir",
            "reason": self.reason,
            "segment": self.segment,
            "segmentIndex": self.segment_index,
            "field": self.field,
        }


def _full_url(message_id: str, position: int) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'hl7lake:{message_id}:{position}')}"


def _date(value: str | None) -> str | None:
    """A TS/DTM's date at the precision it has (YYYY, YYYY-MM, YYYY-MM-DD); None when not a date."""
    digits = (value or "")[:8]
    try:
        if len(digits) == 8:
            return date(int(digits[:4]), int(digits[4:6]), int(digits[6:])).isoformat()
        if len(digits) >= 6:
            return f"{date(int(digits[:4]), int(digits[4:6]), 1).isoformat()[:7]}"
        if len(digits) >= 4 and digits[:4].isdigit():
            return digits[:4]
    except ValueError:
        return None
    return None


def _patient(fields: dict[str, str], index: int) -> dict[str, Any]:
    identifier_value = fields.get("3.1") or fields.get("3")
    if not identifier_value:
        raise MappingError(
            "PID-3 (patient identifier) is empty", segment="PID", segment_index=index, field="PID-3"
        )
    identifier: dict[str, Any] = {"value": identifier_value}
    if fields.get("3.4") or fields.get("3.4.1"):
        identifier["system"] = (
            f"urn:oid:{fields.get('3.4.2')}" if fields.get("3.4.2") else fields.get("3.4.1") or fields["3.4"]
        )
    patient: dict[str, Any] = {"resourceType": "Patient", "identifier": [identifier]}
    family, given = fields.get("5.1") or fields.get("5.1.1") or fields.get("5"), fields.get("5.2")
    if family or given:
        name: dict[str, Any] = {}
        if family:
            name["family"] = family
        if given:
            name["given"] = [given]
        patient["name"] = [name]
    birth = _date(fields.get("7") or fields.get("7.1"))
    if birth:
        patient["birthDate"] = birth
    gender = _GENDERS.get(fields.get("8") or "")
    if gender:
        patient["gender"] = gender
    return patient


def convert(document: ParsedDocument, message_id: str) -> dict[str, Any]:
    """One FHIR R4 transaction Bundle for one parsed message."""
    header = document["header"]
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": _full_url(message_id, 1),
            "resource": {
                "resourceType": "MessageHeader",
                "eventCoding": {"system": "http://terminology.hl7.org/CodeSystem/v2-0003",
                                "code": header["messageType"].split("^")[-1]},
                "source": {"endpoint": header.get("sendingApplication") or "unknown"},
            },
            "request": {"method": "POST", "url": "MessageHeader"},
        }
    ]  # fmt: skip
    for index, segment in enumerate(document["segments"], 1):
        if segment["id"] != "PID":
            continue
        patient = _patient(segment["fields"], index)
        identifier = patient["identifier"][0]
        condition = f"identifier={identifier.get('system', '')}|{identifier['value']}"
        entries.append(
            {
                "fullUrl": _full_url(message_id, index),
                "resource": patient,
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": condition},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
