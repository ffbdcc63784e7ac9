"""Issue 10, stray escape characters: kept as written, flagged ``escape-kept`` in the catalog, never refused.

Built from the two real lab messages the issue quotes (from nHapi's issue reports): ``BSV 4\\5 re.``
(also in the peer corpus as 558-ADT_A08-2.4.hl7, from Efferent-Health/HL7-dotnetcore, MIT, whose
lines are copied here so the test runs without ../shared) and ``(1.6-12.0)a \\ (8.0-22.0)b``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from hub.er7 import Er7Error
from hub.events import Envelope, Event
from lake.writer import LakeWriter
from tests.factories import received_envelope
from tests.fakes.hub import MemoryHub
from tests.fakes.lake import MemoryCatalog, MemoryObjectStore
from workers.er7_staging.document import parse_document, render_document
from workers.er7_staging.handler import Er7StagingHandler

# peer corpus 558-ADT_A08-2.4.hl7 (HL7-dotnetcore test/Program.cs), verbatim
PEER_558 = (
    "MSH|^~\\&|TEST^TEST|TEST|||11111||ADT^A08|11111|P|2.4|||AL||D||||||\r"
    "ZZ1|1|139378|20201230100000|ghg^ghgh-HA||s1^OP-Saal 1|gh^gjhg 1|ghg^ghjg-HA|BSV 4\\5 re.||||||"
)
MSH = "MSH|^~\\&|LAB|HOSP|LAKE|AWS|20260101||ORU^R01|C1|P|2.5\r"
NTE = MSH + "PID|1||MRN1\rNTE|1||BSV 4\\5 re."
RANGE = "(1.6-12.0)a \\ (8.0-22.0)b"
OBX = MSH + f"PID|1||MRN1\rOBR|1\rOBX|1|NM|WBC||7.1|10*9/L|{RANGE}|N|||F"


def kept(segment: str, index: int, field: str) -> dict[str, Any]:
    return {"code": "escape-kept", "segment": segment, "segmentIndex": index, "field": field}


def fields(doc: dict[str, Any], index: int) -> dict[str, str]:
    fs: dict[str, str] = doc["segments"][index - 1]["fields"]
    return fs


@pytest.mark.parametrize(
    ("text", "index", "key", "value"),
    [
        (NTE, 3, "3", "BSV 4\\5 re."),
        (OBX, 4, "7", RANGE),
        (PEER_558, 2, "9", "BSV 4\\5 re."),
    ],
)
def test_stray_escape_is_kept_as_written_and_flagged(text: str, index: int, key: str, value: str) -> None:
    findings: list[dict[str, Any]] = []
    doc = parse_document(text, findings=findings)
    sid = doc["segments"][index - 1]["id"]
    assert fields(doc, index)[key] == value
    assert findings == [kept(sid, index, f"{sid}-{key}")]
    # rendered the standard way (\E\), and that reads back as the same document, with no finding
    rendered = render_document(doc)
    assert "\\E\\" in rendered.split("\r")[index - 1]
    again: list[dict[str, Any]] = []
    assert parse_document(rendered, findings=again)["segments"] == doc["segments"]
    assert again == []


def test_a_stray_does_not_hide_a_real_sequence_after_it() -> None:
    findings: list[dict[str, Any]] = []
    doc = parse_document(MSH + "NTE|1||4\\5 \\F\\ x\\H\\y\\", findings=findings)
    assert fields(doc, 2)["3"] == "4\\5 | x\\H\\y\\"  # \H\ stays a formatting instruction
    assert findings == [kept("NTE", 2, "NTE-3")]


@pytest.mark.parametrize(
    "wire",
    ["DOE\\^JOHN", "A^B&C\\Q\\", "a\\\\b", "\\P\\", "\\XZZ\\", "50\\"],
)
def test_unknown_unterminated_and_empty_sequences_are_never_refused(wire: str) -> None:
    findings: list[dict[str, Any]] = []
    parse_document(MSH + f"NTE|1||{wire}", findings=findings)
    assert len(findings) == 1 and findings[0]["code"] == "escape-kept"


def test_hex_bytes_invalid_in_the_charset_are_still_refused() -> None:
    with pytest.raises(Er7Error, match="not valid utf-8"):
        parse_document(MSH + "NTE|1||caf\\XE9\\ 4\\5")


def test_findings_are_capped() -> None:
    findings: list[dict[str, Any]] = []
    parse_document(MSH + "\r".join(f"NTE|{i}||a\\b" for i in range(1, 31)), findings=findings)
    assert len(findings) == 21
    assert findings[-1]["more"] == 10 and findings[-1]["field"] is None


def run_staging(payload: str, *, validate: bool) -> tuple[MemoryHub, Envelope]:
    hub = MemoryHub()
    hub.publish(received_envelope(payload))
    handler = Er7StagingHandler(hub, hub.payloads, validate=validate)
    for event in hub.drain("er7-staging"):
        handler.handle(event)
    [event] = hub.published[1:]
    return hub, event


def catalog_item(hub: MemoryHub, event: Envelope) -> dict[str, Any]:
    catalog = MemoryCatalog()
    writer = LakeWriter(MemoryObjectStore("lake"), catalog, hub.payloads)
    for lake_event in hub.drain("lake-writer"):
        writer.handle(lake_event)
    item: dict[str, Any] = catalog.items[event.id]
    return item


@pytest.mark.parametrize("validate", [False, True])
@pytest.mark.parametrize(
    ("text", "finding"), [(NTE, kept("NTE", 3, "NTE-3")), (OBX, kept("OBX", 4, "OBX-7"))]
)
def test_finding_reaches_the_catalog_item(text: str, finding: dict[str, Any], validate: bool) -> None:
    hub, event = run_staging(text, validate=validate)
    assert event.event is Event.PARSED
    assert event.extra["findings"][0] == finding
    if validate:  # merged with the validator's findings, never replacing them
        assert all(f["code"] != "escape-kept" for f in event.extra["findings"][1:])
    else:
        assert event.extra["findings"] == [finding]
    item = catalog_item(hub, event)
    assert item["status"] == "parsed" and item["findings"] == event.extra["findings"]
    # positions only: nothing of the value reaches the event's findings or the catalog
    assert "BSV" not in json.dumps(item["findings"]) and "22.0" not in json.dumps(item["findings"])


def test_clean_message_has_no_parse_findings() -> None:
    _, event = run_staging(MSH + "NTE|1||a\\E\\b", validate=False)
    assert event.event is Event.PARSED and "findings" not in event.extra
