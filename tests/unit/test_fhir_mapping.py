"""The mapping's rules on small hand-written messages: value[x] by OBX-2, time stamps, fullUrls,
unmapped segments, refusals."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from workers.er7_staging.document import parse_document
from workers.fhir.mapping import MAPPED_TYPES, MappingError, convert
from workers.fhir.mapping.codesystems import coding_system
from workers.fhir.mapping.timestamps import TimestampError, to_date, to_datetime

MSH = "MSH|^~\\&|LAB|HOSP^1.2.3^ISO|EHR|HOSP|20240301101500+0100||ORU^R01|C1|P|2.5.1"
PID = "PID|1||42^^^HOSP&1.2.3&ISO^MR||Doe^Jane||19800229|F"
OBR = "OBR|1|P1|F1|24323-8^Metabolic panel^LN|||202403010900"


def _convert(*segments: str, message_id: str = "m1") -> dict[str, Any]:
    bundle = convert(parse_document("\r".join(segments), message_id=message_id), message_id)
    Bundle.model_validate(bundle)
    return bundle


def _observation(obx: str) -> dict[str, Any]:
    bundle = _convert(MSH, PID, OBR, obx)
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation")


def test_mapped_types() -> None:
    assert {"ADT^A01", "ADT^A03", "ADT^A04", "ADT^A08", "ORU^R01", "VXU^V04"} == MAPPED_TYPES


@pytest.mark.parametrize(
    ("obx", "key", "expected"),
    [
        (
            "OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L^^UCUM",
            "valueQuantity",
            {"value": 5.4, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
        ),
        ("OBX|1|NM|2345-7^Glucose^LN||12|mg/dL", "valueQuantity", {"value": 12, "unit": "mg/dL"}),
        ("OBX|1|ST|8251-1^Note^LN||all good", "valueString", "all good"),
        ("OBX|1|TX|8251-1^Note^LN||line one~line two", "valueString", "line one\nline two"),
        (
            "OBX|1|CWE|5778-6^Color^LN||Y^Yellow^HL70078",
            "valueCodeableConcept",
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0078",
                        "code": "Y",
                        "display": "Yellow",
                    }
                ]
            },
        ),
        (
            "OBX|1|SN|2345-7^Glucose^LN||<^5|mg/dL",
            "valueQuantity",
            {"value": 5, "unit": "mg/dL", "comparator": "<"},
        ),
        (
            "OBX|1|SN|5671-3^Titer^LN||^1^:^128",
            "valueRatio",
            {"numerator": {"value": 1}, "denominator": {"value": 128}},
        ),
        ("OBX|1|SN|2345-7^Glucose^LN||^3^-^5", "valueRange", {"low": {"value": 3}, "high": {"value": 5}}),
        ("OBX|1|DT|21112-8^Birth date^LN||202402", "valueDateTime", "2024-02"),
        ("OBX|1|TS|21112-8^When^LN||20240201083000", "valueDateTime", "2024-02-01T08:30:00+01:00"),
    ],
)
def test_observation_value_by_obx_2(obx: str, key: str, expected: object) -> None:
    assert _observation(obx)[key] == expected


def test_ed_is_an_attachment_in_the_r5_value_extension() -> None:
    observation = _observation("OBX|1|ED|11502-2^Report^LN||^application^pdf^Base64^JVBERg==")
    assert observation["extension"] == [
        {
            "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.value",
            "valueAttachment": {"contentType": "application/pdf", "data": "JVBERg=="},
        }
    ]


def test_nte_after_obx_is_its_note_and_after_obr_the_requests() -> None:
    bundle = _convert(MSH, PID, OBR, "NTE|1||fasting", "OBX|1|ST|8251-1^Note^LN||x", "NTE|1||checked twice")
    by_type = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
    assert by_type["ServiceRequest"]["note"] == [{"text": "fasting"}]
    assert by_type["Observation"]["note"] == [{"text": "checked twice"}]
    assert "meta" not in bundle


def test_full_urls_are_stable_per_message_id_and_unique_per_segment() -> None:
    first = _convert(MSH, PID, OBR, "OBX|1|ST|8251-1^Note^LN||x")
    again = _convert(MSH, PID, OBR, "OBX|1|ST|8251-1^Note^LN||x")
    other = _convert(MSH, PID, OBR, "OBX|1|ST|8251-1^Note^LN||x", message_id="m2")
    urls = [e["fullUrl"] for e in first["entry"]]
    assert urls == [e["fullUrl"] for e in again["entry"]]
    assert len(set(urls)) == len(urls) and all(u.startswith("urn:uuid:") for u in urls)
    assert not set(urls) & {e["fullUrl"] for e in other["entry"]}
    assert all(e["request"]["method"] == "POST" for e in first["entry"])
    patient = next(e for e in first["entry"] if e["resource"]["resourceType"] == "Patient")
    assert patient["request"]["ifNoneExist"] == "identifier=urn:oid:1.2.3|42"


def test_unmapped_segments_are_tagged_with_their_positions() -> None:
    bundle = _convert(MSH, "SFT|Vendor", PID, "ZXY|1", "ZXY|2", OBR)
    assert bundle["meta"]["tag"] == [
        {
            "system": "https://hl7lake.example/unmapped-segment",
            "code": "SFT",
            "display": "not mapped: segment 2",
        },
        {
            "system": "https://hl7lake.example/unmapped-segment",
            "code": "ZXY",
            "display": "not mapped: segment 4, 5",
        },
    ]


def test_adt_with_evn_gets_a_provenance_of_every_resource() -> None:
    msh = MSH.replace("ORU^R01", "ADT^A03")
    bundle = _convert(msh, "EVN|A03|20240301101000", PID, "PV1|1|I|W1^R2^B3|||||||||||||||V9")
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert types == ["MessageHeader", "Patient", "Encounter", "Provenance"]
    provenance = bundle["entry"][-1]["resource"]
    assert provenance["recorded"] == "2024-03-01T10:10:00+01:00"
    assert len(provenance["target"]) == 2
    assert bundle["entry"][2]["resource"]["status"] == "finished"
    assert bundle["timestamp"] == "2024-03-01T10:15:00+01:00"


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        ((MSH.replace("ORU^R01", "ADT^A05"), PID), {"segment": "MSH", "segmentIndex": 1, "field": "MSH-9"}),
        (
            (MSH, PID, OBR, "OBX|1|NM|2345-7^Glucose^LN||high"),
            {"segment": "OBX", "segmentIndex": 4, "field": "OBX-5"},
        ),
        ((MSH, PID, OBR, "OBX|1|NM|||5"), {"segment": "OBX", "segmentIndex": 4, "field": "OBX-3"}),
        ((MSH, "PID|1||42||Doe||19801301"), {"segment": "PID", "segmentIndex": 2, "field": "PID-7"}),
        ((MSH, OBR), {"segment": "OBR", "segmentIndex": 2}),
    ],
)
def test_refusals_name_segment_and_field(segments: tuple[str, ...], expected: dict[str, Any]) -> None:
    with pytest.raises(MappingError) as caught:
        convert(parse_document("\r".join(segments), message_id="m"), "m")
    detail = caught.value.to_dict()
    assert detail.pop("stage") == "fhir" and detail.pop("reason")
    assert detail == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024", "2024"),
        ("202402", "2024-02"),
        ("20240229", "2024-02-29"),
        ("202402291230", "2024-02-29T12:30:00+01:00"),
        ("20240229123005.25-0500", "2024-02-29T12:30:05.25-05:00"),
    ],
)
def test_timestamps_keep_precision_and_zone(value: str, expected: str) -> None:
    assert to_datetime(value, "+01:00") == expected


def test_a_time_without_any_zone_keeps_the_date_only() -> None:
    assert to_datetime("202402291230", None) == "2024-02-29"


@pytest.mark.parametrize("value", ["20230229", "2024133", "abcd", "2024022925", "20240229+99"])
def test_invalid_timestamps_are_refused(value: str) -> None:
    with pytest.raises(TimestampError):
        to_datetime(value, None)
    if len(value) == 8:
        with pytest.raises(TimestampError):
            to_date(value)


@pytest.mark.parametrize(
    ("name", "system"),
    [
        ("LN", "http://loinc.org"),
        ("SCT", "http://snomed.info/sct"),
        ("I10", "http://hl7.org/fhir/sid/icd-10-cm"),
        ("UCUM", "http://unitsofmeasure.org"),
        ("HL70001", "http://terminology.hl7.org/CodeSystem/v2-0001"),
        ("2.16.840.1.113883.6.1", "urn:oid:2.16.840.1.113883.6.1"),
        ("Local Lab", "https://hl7lake.example/fhir/namespace/Local%20Lab"),
    ],
)
def test_coding_systems_by_table_name(name: str, system: str) -> None:
    assert coding_system(name) == system


def test_mapping_error_to_dict_omits_none() -> None:
    err = MappingError("bad", segment="OBX", segment_index=3)
    assert err.to_dict() == {"stage": "fhir", "reason": "bad", "segment": "OBX", "segmentIndex": 3}
