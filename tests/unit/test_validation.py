"""workers.er7_staging.validation: hl7apy's version-aware checks as findings, never as failures."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from hub.er7 import Er7Error, decode, split_batch
from hub.events import Envelope, Event
from lake.writer import LakeWriter
from tests.conftest import CORPUS, corpus_message, require_shared
from tests.factories import received_envelope
from tests.fakes.hub import MemoryHub
from tests.fakes.lake import MemoryCatalog, MemoryObjectStore
from workers.er7_staging import validation
from workers.er7_staging.document import parse_document
from workers.er7_staging.handler import Er7StagingHandler
from workers.er7_staging.validation import MAX_FINDINGS, MAX_MESSAGE_CHARS, validate

KEYS = {"severity", "segment", "field", "code", "message"}

ADT_A01 = "\r".join(
    [
        "MSH|^~\\&|ADT1|HOSP_A|LAKE|AWS|20260101120000||ADT^A01^ADT_A01|CTRL-1|P|2.5",
        "EVN|A01|20260101120000",
        "PID|1||MRN1^^^HOSP_A^MR||DOE^JOHN||19700101|M",
        "PV1|1|I|WARD1^101^A",
    ]
)


def check(text: str) -> list[dict[str, Any]]:
    """Validate as the staging worker does: with the version its own header reader found."""
    findings = validate(text, parse_document(text)["header"]["version"])
    assert_well_formed(findings)
    return findings


def assert_well_formed(findings: list[dict[str, Any]]) -> None:
    assert isinstance(findings, list) and len(findings) <= MAX_FINDINGS
    for finding in findings:
        assert set(finding) == KEYS
        assert finding["severity"] in ("error", "warning")
        assert isinstance(finding["code"], str) and finding["code"]
        assert isinstance(finding["message"], str) and 0 < len(finding["message"]) <= MAX_MESSAGE_CHARS
        if finding["field"] is not None:
            assert finding["field"].startswith(f"{finding['segment']}-")
    severities = [f["severity"] for f in findings]
    assert severities == sorted(severities, key=lambda s: s != "error")  # errors first
    json.dumps(findings)  # travels in the envelope, lands in the catalog


def codes(findings: list[dict[str, Any]]) -> set[str]:
    return {f["code"] for f in findings}


def corpus(name: str) -> str:
    return decode(corpus_message(name))


def test_valid_adt_a01_has_no_finding() -> None:
    assert check(ADT_A01) == []


def test_z_segment_is_never_a_finding() -> None:
    assert check(ADT_A01 + "\rZPI|1|site^specific&stuff~x|more") == []
    # also between segments, in a message with findings of its own
    findings = check(ADT_A01.replace("\rPV1", "\rZPV|1|^^x\rPV1").replace("|2.5", "|2.8.2"))
    assert not any("Z" in (f["segment"] or "") or "ZPV" in f["message"] for f in findings)


def test_missing_required_segment_is_an_error() -> None:
    without_pid = "\r".join(s for s in ADT_A01.split("\r") if not s.startswith("PID"))
    findings = check(without_pid)
    assert findings == [
        {
            "severity": "error",
            "segment": "PID",
            "field": None,
            "code": "missing-segment",
            "message": "PID is required in ADT_A01 (HL7 2.5)",
        }
    ]


def test_v21_message_gives_findings_not_an_exception() -> None:
    findings = check(corpus("078-ADT_A04-2.1.hl7"))
    assert findings and all("HL7 2.1" in f["message"] for f in findings)
    assert {"missing-segment", "missing-component"} <= codes(findings)


def test_v282_message_gives_findings_not_an_exception() -> None:
    v282 = ADT_A01.replace("|2.5", "|2.8.2").replace("EVN|A01|", "EVN||")  # EVN-1 is gone in 2.8
    assert check(v282) == []
    findings = check("\r".join(s for s in v282.split("\r") if not s.startswith("EVN")))
    assert [(f["code"], f["segment"]) for f in findings] == [("missing-segment", "EVN")]
    assert "HL7 2.8.2" in findings[0]["message"]


@pytest.mark.parametrize(
    ("version", "expected"),
    [("2.9", "HL7 version 2.9 is not one hl7apy defines"), (None, "MSH-12 names no HL7 version")],
)
def test_unsupported_version_is_one_warning(version: str | None, expected: str) -> None:
    [finding] = validate(ADT_A01, version)
    assert finding["code"] == "unsupported-version" and finding["severity"] == "warning"
    assert finding["message"].startswith(expected)


def test_version_argument_wins_over_msh12() -> None:
    # checked against the version asked for, even if MSH-12 says otherwise
    assert {f["message"] for f in validate(ADT_A01.replace("|2.5", "|2.8.2"), "2.1")} >= {
        "NK1 is required in ADT_A01 (HL7 2.1)"
    }


def test_segment_unknown_to_the_version_is_a_warning() -> None:
    findings = check(ADT_A01.replace("|2.5", "|2.4") + "\rCON|1")
    assert [(f["severity"], f["code"], f["segment"]) for f in findings] == [
        ("warning", "unknown-segment", "CON")
    ]


def test_segment_foreign_to_the_structure_is_reported() -> None:
    # TXA is a 2.5 segment, but not one of ADT_A01 (hl7apy does not check the order of segments)
    findings = check(ADT_A01 + "\rTXA|1|CN")
    assert [(f["code"], f["segment"]) for f in findings] == [("unexpected-segment", "TXA")]
    assert findings[0]["message"] == "TXA does not fit where it appears in the ADT_A01 structure of HL7 2.5"


def test_unknown_structure_checks_segments_one_by_one() -> None:
    findings = check(ADT_A01.replace("ADT^A01^ADT_A01", "ADT^A04^ADT_A04").replace("|2.5", "|2.8"))
    assert findings[0]["code"] == "unknown-structure" and findings[0]["field"] == "MSH-9"
    assert "ADT_A04 is not defined in HL7 2.8" in findings[0]["message"]
    assert ("unknown-field", "EVN-1") in {(f["code"], f["field"]) for f in findings}  # EVN-1 left 2.8


def test_positions_are_named_and_values_never_quoted() -> None:
    secret = "SECRETVALUE"
    text = ADT_A01.replace("19700101|M", f"19700101|{secret}").replace(
        "WARD1^101^A", "WARD1^101^A" + "|" * 60 + secret
    )
    findings = check(text)
    assert {(f["code"], f["field"]) for f in findings} == {
        ("table-value", "PID-8"),
        ("unknown-field", "PV1-63"),
    }
    assert "HL70001" in json.dumps(findings)  # the table, not the value
    assert secret not in json.dumps(findings)


def test_truncation_character_below_v27_is_a_warning_and_still_checked() -> None:
    text = ADT_A01.replace("^~\\&", "^~\\&#", 1)
    findings = check(text)
    assert [(f["code"], f["field"]) for f in findings] == [("encoding-characters", "MSH-2")]


def test_findings_are_capped_errors_first() -> None:
    findings = check(corpus("001-ADT_A01-2.8.hl7"))
    assert len(findings) == MAX_FINDINGS
    assert findings[-1]["code"] == "truncated" and "more findings" in findings[-1]["message"]
    assert findings[0]["severity"] == "error"


def test_identical_findings_are_listed_once() -> None:
    many = ADT_A01 + "".join(f"\rOBX|{i}|ST|||v" for i in range(1, 30))  # OBX-3, OBX-11 missing each time
    findings = check(many)
    assert [f["field"] for f in findings if f["code"] == "missing-field"] == ["OBX-3", "OBX-11"]


def test_hl7apy_crash_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("hl7apy bug with a value: SECRETVALUE")

    monkeypatch.setattr(validation, "parse_message", boom)
    assert [(f["code"], f["message"]) for f in validate(ADT_A01, "2.5")] == [
        ("parse-error", "hl7apy cannot read the message (RuntimeError)")
    ]
    monkeypatch.undo()
    monkeypatch.setattr(validation, "_check", boom)
    assert [(f["code"], f["message"]) for f in validate(ADT_A01, "2.5")] == [
        ("validator-error", "validation stopped early (RuntimeError)")
    ]


@pytest.mark.parametrize(
    "text", ["", "MSH", "MSH|", "MSH|^~\\&", "garbage", "MSH|^~\\&|||||||ADT^A01|1|P|2.5\rPID", "PID|1\rMSH|"]
)
def test_never_raises_on_junk(text: str) -> None:
    for version in ("2.5", "2.1", "2.8.2", None, "x" * 300):
        assert_well_formed(validate(text, version))


def test_too_large_is_not_validated() -> None:
    [finding] = validate(ADT_A01, "2.5", max_chars=100)
    assert finding["code"] == "too-large"


def corpus_messages() -> list[tuple[str, str]]:
    messages = []
    for path in sorted((require_shared(CORPUS, "public HL7 corpus") / "messages").glob("*.hl7")):
        try:
            texts = split_batch(decode(path.read_bytes())).messages
        except Er7Error:
            continue
        for index, text in enumerate(texts, 1):
            try:
                parse_document(text)
            except Er7Error:
                continue
            messages.append((f"{path.name}#{index}", text))
    return messages


def test_never_raises_on_any_corpus_message() -> None:
    messages = corpus_messages()
    assert len(messages) >= 35
    seen: set[str] = set()
    for name, text in messages:
        doc = parse_document(text)
        findings = check(text)
        seen |= codes(findings)
        assert "validator-error" not in codes(findings), name
        # no finding quotes a value from outside the header (names and codes only)
        values = {
            value
            for segment in doc["segments"][1:]
            for value in segment["fields"].values()
            if len(value) >= 6 and not value.isdigit() and not re.fullmatch(r"HL7[0-9]{4}", value)
        }  # (a coding-system value may be the name of an HL7 table, which findings do name)
        shown = json.dumps(findings)
        assert not [v for v in values if v in shown], name
    assert {"missing-segment", "table-value", "unknown-segment", "unknown-structure"} <= seen


# -- the staging worker -----------------------------------------------------------------------------


def received(payload: str) -> Envelope:
    return received_envelope(payload)


def run_staging(payload: str, *, validate: bool) -> tuple[MemoryHub, Envelope]:
    hub = MemoryHub()
    hub.publish(received(payload))
    handler = Er7StagingHandler(hub, hub.payloads, validate=validate)
    for event in hub.drain("er7-staging"):
        handler.handle(event)
    [event] = hub.published[1:]
    return hub, event


def test_handler_publishes_findings_when_validating() -> None:
    without_pid = "\r".join(s for s in ADT_A01.split("\r") if not s.startswith("PID")) + "\rZPI|1"
    hub, event = run_staging(without_pid, validate=True)
    assert event.event is Event.PARSED  # findings never make a failure
    assert [f["code"] for f in event.extra["findings"]] == ["missing-segment"]
    assert json.loads(event.to_json())["findings"] == event.extra["findings"]
    # the lake writer stores them in the catalog item
    catalog = MemoryCatalog()
    writer = LakeWriter(MemoryObjectStore("lake"), catalog, hub.payloads)
    for lake_event in hub.drain("lake-writer"):
        writer.handle(lake_event)
    item = catalog.items[event.id]
    assert item["status"] == "parsed" and item["findings"] == event.extra["findings"]


def test_handler_document_is_the_same_with_or_without_validation() -> None:
    _, checked = run_staging(ADT_A01, validate=True)
    _, plain = run_staging(ADT_A01, validate=False)
    assert checked.payload == plain.payload
    assert {k: v for k, v in checked.extra.items() if k != "steps"} == {"findings": []}  # steps: the path
    assert "findings" not in plain.extra and "findings" not in json.loads(plain.to_json())


def test_handler_with_validation_still_reports_parse_failures() -> None:
    _, event = run_staging(ADT_A01.replace("PID|1", "pid|1"), validate=True)
    assert event.event is Event.FAILED and "findings" not in event.extra
