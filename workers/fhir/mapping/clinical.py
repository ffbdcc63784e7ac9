"""AL1 → AllergyIntolerance, DG1 → Condition, RXA (+ RXR, ORC) → Immunization."""

from __future__ import annotations

from workers.fhir.mapping import codesystems as cs
from workers.fhir.mapping import datatypes as dt
from workers.fhir.mapping.context import JSON, Context
from workers.fhir.mapping.segment import SegmentView, components


def allergy(ctx: Context, seg: SegmentView) -> None:
    category = cs.ALLERGY_CATEGORY.get((seg.value(2) or "").upper())
    manifestations = [{"text": t} for rep in seg.reps(5) if (t := dt.text(rep.get((1, 1))))]
    severity = cs.ALLERGY_SEVERITY.get((seg.value(4) or "").upper())
    reaction = dt.compact({"manifestation": manifestations, "severity": severity}) if manifestations else None
    resource: JSON = {
        "resourceType": "AllergyIntolerance",
        "category": [category] if category else None,
        "criticality": "high" if severity == "severe" else None,
        "code": dt.codeable_concept(components(seg.rep(3) or {})),
        "patient": ctx.require_patient(seg),
        "encounter": ctx.encounter,
        "onsetDateTime": ctx.date(seg, 6),
        "reaction": [reaction] if reaction else None,
    }
    ctx.add(seg, dt.compact(resource))


def condition(ctx: Context, seg: SegmentView) -> None:
    code = dt.codeable_concept(components(seg.rep(3) or {}))
    description = dt.text(seg.value(4))
    if code is None and description:
        code = {"text": description}
    resource: JSON = {
        "resourceType": "Condition",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "encounter-diagnosis",
                    }
                ]
            }
        ],
        "code": code,
        "subject": ctx.require_patient(seg),
        "encounter": ctx.encounter,
        "onsetDateTime": ctx.datetime(seg, 5),
        "recordedDate": ctx.datetime(seg, 19),
        "identifier": [i] if (rep := seg.rep(20)) and (i := dt.entity_identifier(components(rep))) else None,
    }
    ctx.add(seg, dt.compact(resource))


def immunization(ctx: Context, seg: SegmentView, orc: SegmentView | None, rxr: SegmentView | None) -> None:
    vaccine = dt.codeable_concept(components(seg.rep(5) or {}))
    if vaccine is None:
        raise seg.error("RXA-5 (administered code) is empty: Immunization.vaccineCode is required", 5)
    occurrence = ctx.datetime(seg, 3)
    if occurrence is None:
        raise seg.error("RXA-3 (start of administration) is empty: Immunization.occurrence is required", 3)
    amount = seg.value(6)
    dose = None
    if amount and amount != "999":
        try:
            number = float(amount)
        except ValueError:
            raise seg.error(f"RXA-6 {amount!r} is not a number", 6) from None
        unit = components(seg.rep(7) or {})
        dose = dt.compact(
            {
                "value": int(number) if number.is_integer() else number,
                "unit": dt.text(unit(2)) or dt.text(unit(1)),
                "system": cs.UCUM if (unit(3) or "").upper() == "UCUM" and unit(1) else None,
                "code": dt.code(unit(1)) if (unit(3) or "").upper() == "UCUM" else None,
            }
        )
    completion = (seg.value(20) or "CP").upper()
    identifiers = []
    if orc is not None:
        for field, kind in ((2, "PLAC"), (3, "FILL")):
            rep = orc.rep(field)
            if rep and (i := dt.entity_identifier(components(rep), kind)):
                identifiers.append(i)
    resource: JSON = {
        "resourceType": "Immunization",
        "identifier": identifiers,
        "status": cs.IMMUNIZATION_STATUS.get(completion, "completed"),
        "statusReason": dt.codeable_concept(components(seg.rep(18) or {})),
        "vaccineCode": vaccine,
        "patient": ctx.require_patient(seg),
        "encounter": ctx.encounter,
        "occurrenceDateTime": occurrence,
        "recorded": ctx.datetime(seg, 22),
        "lotNumber": dt.text(seg.value(15)),
        "expirationDate": ctx.date(seg, 16),
        "manufacturer": {"display": m}
        if (m := dt.text(seg.value(17, 2)) or dt.text(seg.value(17)))
        else None,
        "doseQuantity": dose,
        "isSubpotent": True if completion == "PA" else None,
        "performer": [
            {"actor": p} for rep in seg.reps(10) if (p := dt.practitioner_reference(components(rep)))
        ],
    }
    if rxr is not None:
        resource["route"] = dt.codeable_concept(components(rxr.rep(1) or {}))
        resource["site"] = dt.codeable_concept(components(rxr.rep(2) or {}))
    ctx.add(seg, dt.compact(resource))
