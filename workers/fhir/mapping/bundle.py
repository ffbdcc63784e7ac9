"""One parsed message → one FHIR R4 transaction Bundle (the segment walk and the Bundle around it)."""

from __future__ import annotations

from typing import Any

from hub.document import ParsedDocument
from workers.fhir.mapping import admin, clinical, results
from workers.fhir.mapping import codesystems as cs
from workers.fhir.mapping.context import JSON, Context
from workers.fhir.mapping.errors import MappingError
from workers.fhir.mapping.segment import SegmentView

MAPPED_TYPES: frozenset[str] = frozenset({"ADT^A01", "ADT^A03", "ADT^A04", "ADT^A08", "ORU^R01", "VXU^V04"})
# segments that belong to the one before them and do not end its group (an NTE after OBX + PRT is the OBX's)
_ATTACHED = {"NTE", "PRT"}


def convert(document: ParsedDocument, message_id: str) -> dict[str, Any]:
    message_type = document["header"]["messageType"]
    views = [SegmentView(s["id"], i, s["fields"]) for i, s in enumerate(document["segments"], start=1)]
    msh = views[0]
    if message_type not in MAPPED_TYPES:
        raise MappingError(
            f"message type {message_type} is not mapped", segment="MSH", segment_index=1, field="MSH-9"
        )
    ctx = Context(message_id, message_type, msh.value(7))
    admin.message_header(ctx, msh)
    evn: SegmentView | None = None
    orc: SegmentView | None = None
    request: JSON | None = None
    report: JSON | None = None
    note_target: JSON | None = None  # the resource the next NTE belongs to
    for position, seg in enumerate(views[1:], start=1):
        following = views[position + 1] if position + 1 < len(views) else None
        sid = seg.id
        if sid not in _ATTACHED:
            note_target = None
        if sid == "EVN":
            evn = seg
        elif sid == "PID":
            pd1 = following if following is not None and following.id == "PD1" else None
            admin.patient(ctx, seg, pd1)
            ctx.encounter = None
        elif sid == "PD1" and views[position - 1].id == "PID":
            pass  # mapped into the Patient
        elif sid == "NK1":
            admin.related_person(ctx, seg)
        elif sid == "PV1":
            pv2 = following if following is not None and following.id == "PV2" else None
            admin.encounter(ctx, seg, pv2)
        elif sid == "PV2" and views[position - 1].id == "PV1":
            pass  # mapped into the Encounter
        elif sid == "AL1":
            clinical.allergy(ctx, seg)
        elif sid == "DG1":
            clinical.condition(ctx, seg)
        elif sid == "ORC":
            if orc is not None:
                ctx.skip(orc)
            orc = seg
        elif sid == "OBR":
            request_resource, request = results.service_request(ctx, seg, orc)
            report = results.diagnostic_report(ctx, seg, request)
            orc, note_target = None, request_resource
        elif sid == "OBX":
            observation, reference = results.observation(ctx, seg, request)
            if report is not None:
                report.setdefault("result", []).append(reference)
            note_target = observation
        elif sid == "RXA":
            rxr = following if following is not None and following.id == "RXR" else None
            clinical.immunization(ctx, seg, orc, rxr)
            orc = None
        elif sid == "RXR" and views[position - 1].id == "RXA":
            pass  # mapped into the Immunization
        elif sid == "NTE" and note_target is not None and (annotation := results.note(seg)):
            note_target.setdefault("note", []).append(annotation)
        else:
            ctx.skip(seg)
    if orc is not None:
        ctx.skip(orc)
    if evn is not None:
        targets = [{"reference": e["fullUrl"]} for e in ctx.entries[1:]]
        admin.provenance(ctx, evn, targets, msh)
    return _bundle(ctx, msh)


def _bundle(ctx: Context, msh: SegmentView) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle"}
    if ctx.unmapped:
        bundle["meta"] = {
            "tag": [
                {
                    "system": cs.UNMAPPED_SEGMENT_SYSTEM,
                    "code": segment_id,
                    "display": "not mapped: segment " + ", ".join(str(i) for i in positions),
                }
                for segment_id, positions in ctx.unmapped.items()
            ]
        }
    bundle["identifier"] = {"system": cs.MESSAGE_ID_SYSTEM, "value": ctx.message_id}
    bundle["type"] = "transaction"
    timestamp = ctx.instant(msh, 7)
    if timestamp:
        bundle["timestamp"] = timestamp
    bundle["entry"] = ctx.entries
    return bundle
