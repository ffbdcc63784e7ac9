"""ORC/OBR → ServiceRequest + DiagnosticReport, OBX → Observation (value[x] by OBX-2), NTE → note."""

from __future__ import annotations

import base64
import binascii
import re

from workers.fhir.mapping import codesystems as cs
from workers.fhir.mapping import datatypes as dt
from workers.fhir.mapping import timestamps
from workers.fhir.mapping.context import JSON, Context
from workers.fhir.mapping.segment import Rep, SegmentView, components

_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_MIME_TYPES = {"application", "audio", "image", "multipart", "text", "video", "model", "message"}
VALUE_R5_EXTENSION = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.value"
CODED = {"CE", "CWE", "CNE", "CF", "ID", "IS"}
TEXT = {"ST", "TX", "FT"}


def _number(seg: SegmentView, field: int, value: str) -> int | float:
    value = value.strip()
    if not _DECIMAL.match(value):
        raise seg.error(f"{value!r} is not a number", field)
    number = float(value)
    return int(number) if "." not in value and abs(number) < 2**53 else number


def _quantity(seg: SegmentView, value: str) -> JSON:
    """NM + OBX-6 units → Quantity; system and code only when OBX-6.3 names UCUM."""
    units = components(seg.rep(6) or {})
    unit_code = dt.code(units(1))
    ucum = (units(3) or "").upper() == "UCUM" and unit_code is not None
    return dt.compact(
        {
            "value": _number(seg, 5, value),
            "unit": dt.text(units(2)) or dt.text(units(1)),
            "system": cs.UCUM if ucum else None,
            "code": unit_code if ucum else None,
        }
    )


def _structured_numeric(seg: SegmentView, rep: Rep) -> tuple[str, JSON]:
    """SN: comparator 1, number 2, separator 3 (``:`` ``/`` ratio, ``-`` range), number 4."""
    comparator, first, separator, second = (rep.get((i, 1)) for i in (1, 2, 3, 4))
    units = _quantity(seg, "0")
    units.pop("value")
    if separator in (":", "/") and first and second:
        return "valueRatio", {
            "numerator": {"value": _number(seg, 5, first)},
            "denominator": {"value": _number(seg, 5, second)},
        }
    if separator == "-" and (first or second):
        rng = {}
        if first:
            rng["low"] = {**units, "value": _number(seg, 5, first)}
        if second:
            rng["high"] = {**units, "value": _number(seg, 5, second)}
        return "valueRange", rng
    if not first:
        raise seg.error("SN without a number", 5)
    quantity = {**units, "value": _number(seg, 5, first)}
    if comparator in ("<", "<=", ">=", ">"):
        quantity["comparator"] = comparator
    return "valueQuantity", quantity


def _attachment(seg: SegmentView, rep: Rep) -> JSON:
    """ED: type 2 / subtype 3 → contentType, encoding 4, data 5 (Base64 kept, A and Hex re-encoded)."""
    kind, subtype, encoding, data = (rep.get((i, 1)) or "" for i in (2, 3, 4, 5))
    content_type = None
    if kind.lower() in _MIME_TYPES and subtype:
        content_type = f"{kind.lower()}/{subtype.lower()}"
    elif "/" in subtype:
        content_type = subtype.lower()
    encoded = None
    if data:
        try:
            if encoding.upper() == "BASE64":
                raw = "".join(data.split())
                base64.b64decode(raw, validate=True)
                encoded = raw
            elif encoding.upper() == "HEX":
                encoded = base64.b64encode(bytes.fromhex(data)).decode("ascii")
            else:
                encoded = base64.b64encode(data.encode("utf-8")).decode("ascii")
        except (binascii.Error, ValueError):
            raise seg.error(f"ED data is not valid {encoding or 'text'}", 5) from None
    return dt.compact({"contentType": content_type, "data": encoded})


def _value(ctx: Context, seg: SegmentView) -> tuple[str, object] | None:
    reps = seg.reps(5)
    if not reps:
        return None
    kind = (seg.value(2) or "").upper()
    first = reps[0]
    plain = first.get((1, 1))
    if kind == "NM":
        return ("valueQuantity", _quantity(seg, plain)) if plain else None
    if kind in CODED:
        concept = dt.codeable_concept(components(first))
        return ("valueCodeableConcept", concept) if concept else None
    if kind == "SN":
        return _structured_numeric(seg, first)
    if kind in ("DT", "TS", "DTM"):
        value = ctx.datetime(seg, 5)
        return ("valueDateTime", value) if value else None
    if kind == "TM":
        try:
            return ("valueTime", timestamps.to_time(plain)) if plain else None
        except timestamps.TimestampError as err:
            raise seg.error(str(err), 5) from None
    if kind == "ED":
        attachment = _attachment(seg, first)
        return ("valueAttachment", attachment) if attachment else None
    if kind == "RP" and plain and " " not in plain.strip():
        return ("valueAttachment", {"url": plain.strip()})
    # ST, TX, FT (repetitions are lines) and any other type: its text, components joined by '^'
    lines = (
        ["^".join(v for _, v in sorted(rep.items())) for rep in reps]
        if kind not in TEXT
        else [rep.get((1, 1), "") for rep in reps]
    )
    joined = dt.text("\n".join(lines))
    return ("valueString", joined) if joined else None


def observation(ctx: Context, seg: SegmentView, request: JSON | None) -> tuple[JSON, JSON]:
    """Returns (the Observation, a Reference to it)."""
    code = dt.codeable_concept(components(seg.rep(3) or {}))
    if code is None:
        raise seg.error("OBX-3 (observation identifier) is empty: Observation.code is required", 3)
    value = _value(ctx, seg)
    interpretation = [
        {"coding": [c]}
        for rep in seg.reps(8)
        if (c := dt.coding(rep.get((1, 1)), rep.get((2, 1)), "HL70078", None))
    ]
    reference_range = dt.text(seg.value(7))
    resource: JSON = {
        "resourceType": "Observation",
        "basedOn": [request] if request else None,
        "status": cs.OBSERVATION_STATUS.get((seg.value(11) or "").upper(), "unknown"),
        "code": code,
        "subject": ctx.patient,
        "encounter": ctx.encounter,
        "effectiveDateTime": ctx.datetime(seg, 14),
        "performer": [p for rep in seg.reps(16) if (p := dt.practitioner_reference(components(rep)))],
        "interpretation": interpretation,
        "referenceRange": [{"text": reference_range}] if reference_range else None,
        "method": dt.codeable_concept(components(seg.rep(17) or {})),
    }
    resource = dt.compact(resource)
    if value is not None and value[0] == "valueAttachment":
        # R4 has no Observation.valueAttachment: the R5 element rides in its cross-version extension
        resource["extension"] = [{"url": VALUE_R5_EXTENSION, "valueAttachment": value[1]}]
    elif value is not None:
        resource[value[0]] = value[1]
    return resource, ctx.add(seg, resource)


def service_request(ctx: Context, seg: SegmentView, orc: SegmentView | None) -> tuple[JSON, JSON]:
    identifiers = []
    for source, field, kind in ((orc, 2, "PLAC"), (orc, 3, "FILL"), (seg, 2, "PLAC"), (seg, 3, "FILL")):
        rep = source.rep(field) if source is not None else None
        if rep and (i := dt.entity_identifier(components(rep), kind)) and i not in identifiers:
            identifiers.append(i)
    status = cs.ORDER_STATUS.get((orc.value(5) or "").upper(), "unknown") if orc is not None else "unknown"
    requester = dt.practitioner_reference(components(seg.rep(16) or (orc.rep(12) if orc else None) or {}))
    resource: JSON = {
        "resourceType": "ServiceRequest",
        "identifier": identifiers,
        "status": status,
        "intent": "order",
        "code": dt.codeable_concept(components(seg.rep(4) or {})),
        "subject": ctx.require_patient(seg),
        "encounter": ctx.encounter,
        "authoredOn": ctx.datetime(orc, 9) if orc is not None else None,
        "requester": requester,
    }
    resource = dt.compact(resource)
    return resource, ctx.add(seg, resource)


def diagnostic_report(ctx: Context, seg: SegmentView, request: JSON) -> JSON:
    code = dt.codeable_concept(components(seg.rep(4) or {}))
    if code is None:
        raise seg.error("OBR-4 (universal service identifier) is empty: DiagnosticReport.code is required", 4)
    filler = seg.rep(3)
    resource: JSON = {
        "resourceType": "DiagnosticReport",
        "identifier": [i] if filler and (i := dt.entity_identifier(components(filler), "FILL")) else None,
        "basedOn": [request],
        "status": cs.REPORT_STATUS.get((seg.value(25) or "").upper(), "unknown"),
        "code": code,
        "subject": ctx.patient,
        "encounter": ctx.encounter,
        "effectiveDateTime": ctx.datetime(seg, 7),
        "issued": ctx.instant(seg, 22),
        "resultsInterpreter": [{"display": p} for rep in seg.reps(32) if (p := dt.text(rep.get((1, 1))))],
    }
    resource = dt.compact(resource)
    ctx.add(seg, resource)
    return resource


def note(seg: SegmentView) -> JSON | None:
    """NTE-3 (repetitions are lines) → Annotation."""
    body = dt.text("\n".join(rep.get((1, 1), "") for rep in seg.reps(3)))
    return {"text": body} if body else None
