"""A message as a segment/field table, with HL7 field names from hl7apy's definitions of its version."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from hl7apy import load_reference

_KEY = re.compile(r"([1-9][0-9]*)")
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")


@dataclass(frozen=True)
class FieldRow:
    position: str  # PID-3, PID-3.1, PID-3[2].1
    name: str | None
    value: str


@dataclass(frozen=True)
class SegmentRows:
    index: int  # 1-based, as in error reports' segmentIndex
    segment: str
    fields: list[FieldRow]
    highlighted: bool = False
    reason: str | None = None


@lru_cache(maxsize=512)
def field_names(segment: str, version: str | None) -> dict[int, str]:
    """Field position → long name (PID 3 → "Patient Identifier List"); empty when hl7apy does not know."""
    if not version or _SEGMENT_ID.fullmatch(segment) is None:
        return {}
    try:
        reference = load_reference(segment, "Segment", version)
    except Exception:  # unknown segment or version: ids alone
        return {}
    names: dict[int, str] = {}
    for child in reference[1]:
        position = child[0].rpartition("_")[2]
        if position.isdigit() and isinstance(child[1][3], str):
            names[int(position)] = child[1][3].replace("_", " ").title()
    return names


def _row(segment: str, key: str, value: Any, names: dict[int, str]) -> FieldRow:
    number = _KEY.match(key)
    name = names.get(int(number.group(1))) if number else None
    return FieldRow(f"{segment}-{key}", name, str(value))


def from_document(document: dict[str, Any], error: dict[str, Any] | None = None) -> list[SegmentRows]:
    version = (document.get("header") or {}).get("version")
    rows = []
    for index, segment in enumerate(document.get("segments") or [], 1):
        sid = str(segment.get("id", ""))
        names = field_names(sid, version)
        fields = [_row(sid, str(k), v, names) for k, v in (segment.get("fields") or {}).items()]
        rows.append(_mark(SegmentRows(index, sid, fields), error))
    return rows


def from_er7(text: str, version: str | None, error: dict[str, Any] | None = None) -> list[SegmentRows]:
    """Rows from the raw ER7 (a failed message has no parsed document): whole fields, not unescaped."""
    segments = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s]
    separator = segments[0][3] if segments and len(segments[0]) > 3 else "|"
    if version is None and segments and segments[0].startswith("MSH"):
        header = segments[0].split(separator)
        component = header[1][:1] if len(header) > 1 else "^"
        version = header[11].split(component)[0] if len(header) > 11 and component else None
    rows = []
    for index, segment in enumerate(segments, 1):
        sid, *values = segment.split(separator)
        names = field_names(sid, version)
        first = 2 if index == 1 and sid in ("MSH", "FHS", "BHS") else 1
        fields = [_row(sid, str(n), v, names) for n, v in enumerate(values, first) if v]
        rows.append(_mark(SegmentRows(index, sid, fields), error))
    return rows


def _mark(rows: SegmentRows, error: dict[str, Any] | None) -> SegmentRows:
    if not error or error.get("segmentIndex") != rows.index:
        return rows
    return SegmentRows(rows.index, rows.segment, rows.fields, True, str(error.get("reason") or ""))
