"""MSH → MessageHeader, EVN → Provenance, PID/PD1 → Patient, NK1 → RelatedPerson, PV1/PV2 → Encounter."""

from __future__ import annotations

from urllib.parse import quote

from workers.fhir.mapping import codesystems as cs
from workers.fhir.mapping import datatypes as dt
from workers.fhir.mapping.context import JSON, Context
from workers.fhir.mapping.segment import SegmentView, components, subcomponents


def _application(seg: SegmentView, field: int) -> tuple[str | None, str]:
    """MSH-3/5 (HD) → (name, endpoint URI). MessageHeader needs an endpoint; HD gives an OID at best."""
    rep = seg.rep(field) or {}
    name = dt.text(rep.get((1, 1))) or dt.text(rep.get((2, 1)))
    system = dt.hd_system(components(rep)) if rep else None
    return name, system or f"{cs.LOCAL}/application/unknown"


def message_header(ctx: Context, seg: SegmentView) -> None:
    event = seg.value(9, 2)
    source_name, source_endpoint = _application(seg, 3)
    dest_name, dest_endpoint = _application(seg, 5)
    sender = dt.text(seg.value(4)) or dt.text(seg.value(4, 2))
    header: JSON = {
        "resourceType": "MessageHeader",
        "eventCoding": dt.v2_coding(event, "0003") or {"system": cs.V2_TABLE + "0003", "code": "unknown"},
        "source": dt.compact({"name": source_name, "endpoint": source_endpoint}),
        "destination": [dt.compact({"name": dest_name, "endpoint": dest_endpoint})] if seg.value(5) else None,
        "sender": {"display": sender} if sender else None,
    }
    ctx.add(seg, dt.compact(header))


def provenance(ctx: Context, seg: SegmentView, targets: list[JSON], msh: SegmentView) -> None:
    """EVN-2 recorded (MSH-7 when empty), EVN-4 reason, EVN-5 operator, EVN-6 occurred; targets: every
    resource of the message. Without a second-precise time stamp with a zone there is no ``recorded``."""
    recorded = ctx.instant(seg, 2) or ctx.instant(msh, 7)
    if recorded is None or not targets:
        ctx.skip(seg)
        return
    reason = dt.codeable_concept(components(seg.rep(4) or {}))
    operator = dt.practitioner_reference(components(seg.rep(5) or {}))
    app = dt.text(msh.value(3)) or "sending application"
    activity = dt.v2_coding(seg.value(1) or msh.value(9, 2), "0003")
    resource: JSON = {
        "resourceType": "Provenance",
        "target": targets,
        "recorded": recorded,
        "occurredDateTime": ctx.datetime(seg, 6),
        "activity": {"coding": [activity]} if activity else None,
        "reason": [reason] if reason else None,
        "agent": [{"who": operator or {"display": app}}],
    }
    ctx.add(seg, dt.compact(resource))


def patient(ctx: Context, seg: SegmentView, pd1: SegmentView | None) -> None:
    identifiers = [
        i for rep in seg.reps(3) if (i := dt.identifier(components(rep), subcomponents(rep, 4))) is not None
    ]
    names = [n for rep in seg.reps(5) if (n := dt.human_name(components(rep))) is not None]
    telecom = [t for rep in seg.reps(13) if (t := dt.contact_point(components(rep), "home"))]
    telecom += [t for rep in seg.reps(14) if (t := dt.contact_point(components(rep), "work"))]
    deceased = ctx.datetime(seg, 29)
    multiple = seg.value(24)
    birth_order = seg.value(25)
    resource: JSON = {
        "resourceType": "Patient",
        "identifier": identifiers,
        "name": names,
        "telecom": telecom,
        "gender": cs.GENDER.get((seg.value(8) or "").upper()),
        "birthDate": ctx.date(seg, 7),
        "deceasedDateTime": deceased,
        "deceasedBoolean": (seg.value(30) == "Y") if seg.value(30) in ("Y", "N") and not deceased else None,
        "address": [a for rep in seg.reps(11) if (a := dt.address(components(rep)))],
        "maritalStatus": dt.codeable_concept(components(seg.rep(16) or {})),
        "multipleBirthInteger": int(birth_order) if birth_order and birth_order.isdigit() else None,
        "communication": [{"language": lang}]
        if (lang := dt.codeable_concept(components(seg.rep(15) or {})))
        else None,
    }
    if resource["multipleBirthInteger"] is None and multiple in ("Y", "N"):
        resource["multipleBirthBoolean"] = multiple == "Y"
    if pd1 is not None:
        practitioners = [r for rep in pd1.reps(4) if (r := dt.practitioner_reference(components(rep)))]
        facilities = [{"display": d} for rep in pd1.reps(3) if (d := dt.text(rep.get((1, 1))))]
        resource["generalPractitioner"] = practitioners + facilities
    resource = dt.compact(resource)
    if_none_exist = None
    if identifiers:
        first = identifiers[0]
        system = first["system"] + "|" if "system" in first else ""
        if_none_exist = f"identifier={system}{quote(first['value'], safe=':/')}"
    ctx.patient = ctx.add(seg, resource, if_none_exist)


def related_person(ctx: Context, seg: SegmentView) -> None:
    resource: JSON = {
        "resourceType": "RelatedPerson",
        "patient": ctx.require_patient(seg),
        "name": [n for rep in seg.reps(2) if (n := dt.human_name(components(rep)))],
        "relationship": [r for rep in seg.reps(3) if (r := dt.codeable_concept(components(rep)))],
        "address": [a for rep in seg.reps(4) if (a := dt.address(components(rep)))],
        "telecom": [t for rep in seg.reps(5) if (t := dt.contact_point(components(rep), "home"))]
        + [t for rep in seg.reps(6) if (t := dt.contact_point(components(rep), "work"))],
        "gender": cs.GENDER.get((seg.value(15) or "").upper()),
        "birthDate": ctx.date(seg, 16),
        "period": dt.compact({"start": ctx.date(seg, 8), "end": ctx.date(seg, 9)}) or None,
    }
    ctx.add(seg, dt.compact(resource))


PARTICIPANTS = (
    (7, "ATND", "attender"),
    (8, "REF", "referrer"),
    (9, "CON", "consultant"),
    (17, "ADM", "admitter"),
)


def encounter(ctx: Context, seg: SegmentView, pv2: SegmentView | None) -> None:
    patient_class = (seg.value(2) or "").upper()
    klass = cs.ENCOUNTER_CLASS.get(patient_class)
    if klass:
        class_coding: dict[str, str | None] = {"system": klass[1], "code": klass[0], "display": klass[2]}
    elif patient_class:
        class_coding = {"system": cs.V2_TABLE + "0004", "code": dt.code(patient_class)}
    else:
        class_coding = {"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "UNK"}
    end = ctx.datetime(seg, 45)
    status = (
        "finished"
        if end or ctx.message_type == "ADT^A03"
        else cs.ENCOUNTER_STATUS.get(patient_class, "in-progress")
    )
    participants = []
    for field, code, display in PARTICIPANTS:
        for rep in seg.reps(field):
            who = dt.practitioner_reference(components(rep))
            if who:
                participants.append(
                    {
                        "type": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                        "code": code,
                                        "display": display,
                                    }
                                ]
                            }
                        ],
                        "individual": who,
                    }
                )
    locations = [
        {"location": {"display": d}} for rep in seg.reps(3) if (d := dt.location_display(components(rep)))
    ]
    visit = seg.rep(19)
    hospitalization = dt.compact(
        {
            "admitSource": dt.codeable_concept(components(seg.rep(14) or {})),
            "reAdmission": dt.codeable_concept(components(seg.rep(13) or {})),
            "dischargeDisposition": dt.codeable_concept(components(seg.rep(36) or {})),
        }
    )
    reason = []
    if pv2 is not None:
        reason = [r for rep in pv2.reps(3) if (r := dt.codeable_concept(components(rep)))]
    resource: JSON = {
        "resourceType": "Encounter",
        "identifier": [i]
        if visit and (i := dt.identifier(components(visit), subcomponents(visit, 4), "0203"))
        else None,
        "status": status,
        "class": class_coding,
        "type": [t] if (t := dt.codeable_concept(components(seg.rep(4) or {}))) else None,
        "serviceType": dt.codeable_concept(components(seg.rep(10) or {})),
        "subject": ctx.patient,
        "participant": participants,
        "period": dt.compact({"start": ctx.datetime(seg, 44), "end": end}) or None,
        "reasonCode": reason,
        "hospitalization": hospitalization or None,
        "location": locations,
    }
    ctx.encounter = ctx.add(seg, dt.compact(resource))
