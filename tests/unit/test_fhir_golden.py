"""Concrete values of one ADT^A01 and one ORU^R01 of the corpus, mapped to FHIR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.fhir_corpus import corpus_document
from workers.fhir.mapping import convert

LOINC = "http://loinc.org"


def _resources(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type]


def test_adt_a01_patient_encounter_and_unmapped_segments(corpus_dir: Path) -> None:
    bundle = convert(corpus_document(corpus_dir, "046-ADT_A01-2.3.hl7"), "msg-046")
    assert bundle["type"] == "transaction"
    (patient,) = _resources(bundle, "Patient")
    assert patient["identifier"][0] == {
        "system": "https://hl7lake.example/fhir/namespace/MSH_MRN",
        "value": "2148790",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
    }
    assert patient["name"][0] == {"family": "RUFUSS", "given": ["MELLODIAL"]}
    assert patient["birthDate"] == "1952-11-29"
    assert patient["gender"] == "female"
    (entry,) = [e for e in bundle["entry"] if e["resource"] is patient]
    assert entry["request"] == {
        "method": "POST",
        "url": "Patient",
        "ifNoneExist": "identifier=https://hl7lake.example/fhir/namespace/MSH_MRN|2148790",
    }
    (encounter,) = _resources(bundle, "Encounter")
    assert encounter["subject"] == {"reference": entry["fullUrl"]}
    assert encounter["class"]["code"] == "IMP"
    assert {t["code"] for t in bundle["meta"]["tag"]} == {"IN1", "IN2"}
    assert all(t["system"] == "https://hl7lake.example/unmapped-segment" for t in bundle["meta"]["tag"])


# (LOINC code, value, UCUM unit) of the first OBX of 008 and the coded/text results after them
ORU_NUMERIC = [
    ("26453-1", 4.41, "10*6/uL"),
    ("718-7", 12.5, "g/mL"),
    ("20570-8", 41, "%"),
    ("26464-8", 105600, "{cells}/uL"),
    ("26515-7", 210000, "{cells}/uL"),
    ("30428-7", 91, "fL"),
    ("28539-5", 29, "pg/{cell}"),
    ("28540-3", 32.4, "g/dL"),
    ("30385-9", 10.5, "%"),
    ("26444-0", 0.1, "10*3/uL"),
]


def test_oru_r01_patient_report_and_each_observation(corpus_dir: Path) -> None:
    bundle = convert(corpus_document(corpus_dir, "008-ORU_R01-2.5.1.hl7"), "msg-008")
    (patient,) = _resources(bundle, "Patient")
    assert patient["identifier"][0]["system"] == "https://hl7lake.example/fhir/namespace/NIST%20MPI"
    assert patient["identifier"][0]["value"] == "PATID1234"
    assert patient["name"] == [{"family": "Jones", "given": ["William", "A"]}]
    assert (patient["birthDate"], patient["gender"]) == ("1961-06-15", "male")
    (report,) = _resources(bundle, "DiagnosticReport")
    assert report["code"]["coding"][0] == {
        "system": LOINC,
        "code": "57021-8",
        "display": "CBC W Auto Differential panel in Blood",
    }
    assert report["effectiveDateTime"] == "2011-01-03T14:34:28-08:00"
    (request,) = _resources(bundle, "ServiceRequest")
    assert {i["value"] for i in request["identifier"]} == {"ORD666555", "R-991133"}
    observations = _resources(bundle, "Observation")
    assert len(observations) == 28 == len(report["result"])
    for observation, (code, value, unit) in zip(observations, ORU_NUMERIC, strict=False):
        assert observation["code"]["coding"][0]["system"] == LOINC
        assert observation["code"]["coding"][0]["code"] == code
        assert observation["valueQuantity"] == {
            "value": value,
            "unit": observation["valueQuantity"]["unit"],
            "system": "http://unitsofmeasure.org",
            "code": unit,
        }
        assert observation["status"] == "final"
    assert observations[0]["valueQuantity"]["unit"] == "million per microliter"
    assert observations[0]["referenceRange"] == [{"text": "4.3 to 6.2"}]
    assert observations[3]["interpretation"][0]["coding"][0]["code"] == "HH"
    macrocytes = observations[21]
    assert macrocytes["code"]["coding"][0]["code"] == "30424-6"
    assert macrocytes["valueCodeableConcept"]["coding"][0] == {
        "system": "http://snomed.info/sct",
        "code": "260415000",
        "display": "not detected",
    }
    assert observations[25]["code"]["coding"][0]["code"] == "6742-1"
    assert observations[25]["valueString"] == "Many spherocytes present."
    assert {t["code"] for t in bundle["meta"]["tag"]} == {"SPM"}
