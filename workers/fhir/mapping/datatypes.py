"""HL7 v2 datatypes → FHIR datatypes (V2-to-FHIR IG datatype maps: CX, XPN, XAD, XTN, CWE, HD, EI, XCN).

Each function takes a component getter (``segment.components(rep)`` or ``subcomponents``) and returns a
FHIR JSON dict, or None when nothing is there to map.
"""

from __future__ import annotations

from typing import Any

from workers.fhir.mapping import codesystems as cs
from workers.fhir.mapping.segment import Getter

JSON = dict[str, Any]


def text(value: str | None) -> str | None:
    """A FHIR string: no surrounding white space, never empty."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def code(value: str | None) -> str | None:
    """A FHIR code: single spaces between non-white-space runs."""
    if value is None:
        return None
    value = " ".join(value.split())
    return value or None


def compact(obj: JSON) -> JSON:
    return {key: value for key, value in obj.items() if value is not None and value != [] and value != {}}


def coding(
    code_value: str | None, display: str | None, system_name: str | None, version: str | None
) -> JSON | None:
    c = code(code_value)
    if c is None:
        return None
    return compact(
        {
            "system": cs.coding_system(system_name),
            "version": text(version),
            "code": c,
            "display": text(display),
        }
    )


def codeable_concept(g: Getter) -> JSON | None:
    """CWE/CE/CNE/CF: primary (1-3, version 7) and alternate (4-6, version 8) codings, original text 9."""
    codings = [c for c in (coding(g(1), g(2), g(3), g(7)), coding(g(4), g(5), g(6), g(8))) if c is not None]
    label = text(g(9)) or (None if codings else text(g(2)) or text(g(5)))
    out = compact({"coding": codings, "text": label})
    return out or None


def v2_coding(value: str | None, table: str) -> JSON | None:
    c = code(value)
    return {"system": cs.V2_TABLE + table, "code": c} if c else None


def hd_system(g: Getter) -> str | None:
    """HD (namespace 1, universal id 2, its type 3) → a system URI."""
    return cs.namespace_system(g(1) or "", g(2), g(3))


def identifier(g: Getter, sub: Getter, type_table: str = "0203") -> JSON | None:
    """CX: value 1, system from the assigning authority 4 (its subcomponents in ``sub``), type 5."""
    value = text(g(1))
    if value is None:
        return None
    system = hd_system(sub) if (sub(1) or sub(2)) else None
    id_type = code(g(5))
    return compact(
        {
            "system": system,
            "value": value,
            "type": {"coding": [{"system": cs.V2_TABLE + type_table, "code": id_type}]} if id_type else None,
        }
    )


def entity_identifier(g: Getter, id_type: str | None = None) -> JSON | None:
    """EI: entity id 1, namespace 2, universal id 3 → Identifier."""
    value = text(g(1))
    if value is None:
        return None
    system = cs.namespace_system(g(2) or "", g(3), g(4)) if (g(2) or g(3)) else None
    return compact(
        {
            "system": system,
            "value": value,
            "type": {"coding": [{"system": cs.V2_TABLE + "0203", "code": id_type}]} if id_type else None,
        }
    )


def human_name(g: Getter, offset: int = 0) -> JSON | None:
    """XPN (offset 0), or the name part of an XCN (offset 1): family 1, given 2-3, suffix 4/6, prefix 5,
    use 7."""
    family = text(g(1 + offset))
    given = [t for t in (text(g(2 + offset)), text(g(3 + offset))) if t]
    prefix = text(g(5 + offset))
    suffix = [t for t in (text(g(4 + offset)), text(g(6 + offset))) if t]
    if not (family or given or prefix or suffix):
        return None
    use = cs.NAME_USE.get(g(7 + offset) or "") if offset == 0 else None
    return compact(
        {
            "use": use,
            "family": family,
            "given": given,
            "prefix": [prefix] if prefix else None,
            "suffix": suffix,
        }
    )


def name_display(name: JSON | None) -> str | None:
    if not name:
        return None
    parts = [*name.get("prefix", []), *name.get("given", []), name.get("family"), *name.get("suffix", [])]
    return " ".join(p for p in parts if p) or None


def practitioner_reference(g: Getter) -> JSON | None:
    """XCN → a logical Reference (identifier from 1, display from the name 2-7)."""
    ident = text(g(1))
    display = name_display(human_name(g, offset=1))
    if not (ident or display):
        return None
    return compact({"identifier": {"value": ident} if ident else None, "display": display})


def address(g: Getter) -> JSON | None:
    """XAD: street 1 (+ other designation 2) → line, city 3, state 4, postal code 5, country 6, type 7,
    county 9 → district."""
    line = [t for t in (text(g(1)), text(g(2))) if t]
    city, state, postal, country, district = text(g(3)), text(g(4)), text(g(5)), text(g(6)), text(g(9))
    if not (line or city or state or postal or country or district):
        return None
    use, kind = cs.ADDRESS_USE.get(g(7) or "", (None, None))
    return compact(
        {
            "use": use,
            "type": kind,
            "line": line,
            "city": city,
            "district": district,
            "state": state,
            "postalCode": postal,
            "country": country,
        }
    )


def contact_point(g: Getter, default_use: str | None = None) -> JSON | None:
    """XTN: use 2, equipment 3, e-mail 4, phone from 5-8 or unformatted 12 or the old number 1."""
    equipment = (g(3) or "").strip()
    email = text(g(4))
    if email and (equipment in ("Internet", "X.400") or not equipment):
        return compact(
            {"system": "email", "value": email, "use": cs.TELECOM_USE.get(g(2) or "", default_use)}
        )
    number = text(g(12))
    if number is None and g(7):
        country, area, local, ext = g(5), g(6), g(7), g(8)
        number = " ".join(p for p in (f"+{country}" if country else None, area and f"({area})", local) if p)
        number = text(number + (f" ext. {ext}" if ext else ""))
    number = number or text(g(1))
    if number is None:
        return None
    system = cs.TELECOM_SYSTEM.get(equipment, "phone")
    use = "mobile" if equipment == "CP" else cs.TELECOM_USE.get(g(2) or "", default_use)
    return compact({"system": system, "value": number, "use": use})


def location_display(g: Getter) -> str | None:
    """PL (point of care 1, room 2, bed 3, facility 4, building 7, floor 8) → one display string."""
    parts = [text(g(i)) for i in (4, 7, 8, 1, 2, 3)]
    return ", ".join(p for p in parts if p) or None
