"""Coding systems and the V2-to-FHIR concept maps used (../shared/v2-to-fhir-maps/codesystems)."""

from __future__ import annotations

import re
from urllib.parse import quote

LOCAL = "https://hl7lake.example/fhir"
UNMAPPED_SEGMENT_SYSTEM = "https://hl7lake.example/unmapped-segment"
MESSAGE_ID_SYSTEM = f"{LOCAL}/message-id"
V2_TABLE = "http://terminology.hl7.org/CodeSystem/v2-"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
UCUM = "http://unitsofmeasure.org"

# HL7 table 0396 names (and common aliases) → FHIR system URIs
CODING_SYSTEMS = {
    "LN": "http://loinc.org",
    "LOINC": "http://loinc.org",
    "SCT": "http://snomed.info/sct",
    "SNM": "http://snomed.info/sct",
    "SNOMED": "http://snomed.info/sct",
    "SNOMEDCT": "http://snomed.info/sct",
    "I10": "http://hl7.org/fhir/sid/icd-10-cm",
    "I10C": "http://hl7.org/fhir/sid/icd-10-cm",
    "ICD10CM": "http://hl7.org/fhir/sid/icd-10-cm",
    "I10P": "http://www.cms.gov/Medicare/Coding/ICD10",
    "I9": "http://hl7.org/fhir/sid/icd-9-cm",
    "I9C": "http://hl7.org/fhir/sid/icd-9-cm",
    "ICD9CM": "http://hl7.org/fhir/sid/icd-9-cm",
    "UCUM": UCUM,
    "CVX": "http://hl7.org/fhir/sid/cvx",
    "MVX": "http://terminology.hl7.org/CodeSystem/MVX",
    "RXNORM": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "RXN": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "NDC": "http://hl7.org/fhir/sid/ndc",
    "C4": "http://www.ama-assn.org/go/cpt",
    "CPT": "http://www.ama-assn.org/go/cpt",
    "HCPCS": "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
    "CDCREC": "urn:oid:2.16.840.1.113883.6.238",
    "NCIT": "http://ncithesaurus-stage.nci.nih.gov",
    "ISO+": "urn:iso:std:iso:2955",
}
_TABLE = re.compile(r"^HL7(\d{4})$")
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

GENDER = {"F": "female", "M": "male", "O": "other", "U": "unknown", "A": "other", "N": "other"}
# PV1-2 patient class → Encounter.class (code, system) and Encounter.status
ENCOUNTER_CLASS = {
    "E": ("EMER", V3_ACT_CODE, "emergency"),
    "I": ("IMP", V3_ACT_CODE, "inpatient encounter"),
    "O": ("AMB", V3_ACT_CODE, "ambulatory"),
    "P": ("PRENC", V3_ACT_CODE, "pre-admission"),
}
ENCOUNTER_STATUS = {"P": "planned", "U": "unknown"}
# OBX-11 / OBR-25 result status (table 0085 / 0123)
OBSERVATION_STATUS = {
    "C": "corrected",
    "D": "entered-in-error",
    "F": "final",
    "I": "registered",
    "N": "cancelled",
    "O": "registered",
    "P": "preliminary",
    "R": "preliminary",
    "S": "preliminary",
    "U": "final",
    "W": "entered-in-error",
    "X": "cancelled",
}
REPORT_STATUS = {
    "A": "partial",
    "C": "corrected",
    "F": "final",
    "I": "registered",
    "O": "registered",
    "P": "preliminary",
    "R": "partial",
    "S": "partial",
    "X": "cancelled",
    "Y": "unknown",
    "Z": "unknown",
}
# ORC-5 order status (table 0038) → ServiceRequest.status
ORDER_STATUS = {
    "A": "active",
    "CA": "revoked",
    "CM": "completed",
    "DC": "revoked",
    "ER": "entered-in-error",
    "HD": "on-hold",
    "IP": "active",
    "SC": "active",
}
# AL1-2 allergen type (table 0127) → AllergyIntolerance.category
ALLERGY_CATEGORY = {
    "DA": "medication",
    "MA": "medication",
    "FA": "food",
    "EA": "environment",
    "AA": "environment",
    "PA": "environment",
    "LA": "environment",
}
# AL1-4 severity (table 0128) → reaction.severity
ALLERGY_SEVERITY = {"SV": "severe", "MO": "moderate", "MI": "mild"}
NAME_USE = {
    "L": "official",
    "D": "usual",
    "M": "maiden",
    "N": "nickname",
    "A": "anonymous",
    "S": "anonymous",
    "C": "old",
    "T": "temp",
    "BAD": "old",
}
ADDRESS_USE = {
    "H": ("home", None),
    "B": ("work", None),
    "O": ("work", None),
    "C": ("temp", None),
    "BA": ("old", None),
    "BI": ("billing", None),
    "M": (None, "postal"),
    "SH": (None, "postal"),
}
TELECOM_USE = {"PRN": "home", "ORN": "home", "VHN": "home", "WPN": "work", "PRS": "mobile", "EMR": "temp"}
TELECOM_SYSTEM = {
    "PH": "phone",
    "CP": "phone",
    "FX": "fax",
    "BP": "pager",
    "Internet": "email",
    "X.400": "email",
    "MD": "other",
    "TDD": "other",
    "TTY": "other",
}
IMMUNIZATION_STATUS = {"CP": "completed", "PA": "completed", "RE": "not-done", "NA": "not-done"}


def coding_system(name: str | None) -> str | None:
    """The FHIR system of a CWE-3 / CWE-6 name: known names, HL7 tables, OIDs, URIs, else a local URI."""
    if not name:
        return None
    name = name.strip()
    known = CODING_SYSTEMS.get(name.upper())
    if known:
        return known
    table = _TABLE.match(name.upper())
    if table:
        return V2_TABLE + table.group(1)
    return namespace_system(name)


def namespace_system(name: str, universal_id: str | None = None, id_type: str | None = None) -> str | None:
    """Identifier/Coding system of an HD (namespace, universal id, its type): OID → urn:oid:, UUID →
    urn:uuid:, a URI as it is, else a local URI naming the namespace."""
    for candidate in (universal_id, name):
        if not candidate:
            continue
        candidate = candidate.strip()
        if _OID.match(candidate):
            return f"urn:oid:{candidate}"
        if _UUID.match(candidate):
            return f"urn:uuid:{candidate.lower()}"
        if candidate.startswith(("http://", "https://", "urn:")) and " " not in candidate:
            return candidate
    label = (name or universal_id or "").strip()
    return f"{LOCAL}/namespace/{quote(label, safe='')}" if label else None
