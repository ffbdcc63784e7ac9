"""workers.er7_staging: parse_document / render_document / escaping."""

from __future__ import annotations

from typing import Any

import pytest

from hub.er7 import Delimiters, Er7Error, decode
from hub.er7.escaping import escaping_for
from tests.conftest import corpus_message
from workers.er7_staging.document import parse_document, parse_segments, render_document

MSH = "MSH|^~\\&|APP|FAC|REC|RFAC|20240101120000||ADT^A01^ADT_A01|CTRL1|P|2.5"
MSH_FIELDS = {
    "1": "|",
    "2": "^~\\&",
    "3": "APP",
    "4": "FAC",
    "5": "REC",
    "6": "RFAC",
    "7": "20240101120000",
    "9.1": "ADT",
    "9.2": "A01",
    "9.3": "ADT_A01",
    "10": "CTRL1",
    "11": "P",
    "12": "2.5",
}


def corpus_text(name: str, charset: str | None = None) -> str:
    return decode(corpus_message(name), charset)


def fields_of(doc: dict[str, Any], seg_id: str, occurrence: int = 1) -> dict[str, str]:
    found: list[dict[str, str]] = [s["fields"] for s in doc["segments"] if s["id"] == seg_id]
    return found[occurrence - 1]


def value(text: str, seg_id: str = "NTE", key: str = "3") -> str | None:
    return fields_of(parse_document(text), seg_id).get(key)


def roundtrip(text: str) -> str:
    return render_document(parse_document(text))


# -- the document shape ------------------------------------------------------------------------


def test_example_document() -> None:
    text = f"{MSH}\rPID|||MRN1^~SSN9^||DOE^JOHN|||M"
    doc = parse_document(text, message_id="m-1")
    assert doc == {
        "id": "m-1",
        "header": {
            "messageType": "ADT^A01",
            "version": "2.5",
            "controlId": "CTRL1",
            "sendingApplication": "APP",
            "sendingFacility": "FAC",
            "receivingApplication": "REC",
            "receivingFacility": "RFAC",
            "dateTime": "20240101120000",
            "charset": None,
        },
        "delimiters": Delimiters().to_dict(),
        "segments": [
            {"id": "MSH", "fields": MSH_FIELDS},
            {"id": "PID", "fields": {"3.1": "MRN1", "3[2].1": "SSN9", "5.1": "DOE", "5.2": "JOHN", "8": "M"}},
        ],
    }
    assert list(doc["segments"][1]["fields"]) == ["3.1", "3[2].1", "5.1", "5.2", "8"]
    assert render_document(doc) == text


def test_keys_for_each_level() -> None:
    fields = fields_of(parse_document(f"{MSH}\rPID|a|b^c|d&e^f|g&h|~r2|^^x~~y^z&w"), "PID")
    assert fields == {
        "1": "a",
        "2.1": "b",
        "2.2": "c",
        "3.1.1": "d",
        "3.1.2": "e",
        "3.2": "f",
        "4.1.1": "g",  # subcomponents without a component separator are component 1
        "4.1.2": "h",
        "5[2]": "r2",
        "6.3": "x",
        "6[3].1": "y",
        "6[3].2.1": "z",
        "6[3].2.2": "w",
    }


def test_msh1_and_msh2_are_verbatim_and_msh3_follows() -> None:
    fields = fields_of(parse_document(MSH), "MSH")
    assert list(fields)[:3] == ["1", "2", "3"]
    assert fields["1"] == "|" and fields["2"] == "^~\\&" and fields["3"] == "APP"


def test_hl7_null_stays_two_quotes() -> None:
    assert value(f'{MSH}\rNTE|1||""', key="3") == '""'
    assert value(f'{MSH}\rNTE|1||a^""', key="3.2") == '""'


def test_empty_segment_and_trailing_empties() -> None:
    doc = parse_document(f"{MSH}\rNTE\rPV1|1||||\rOBX|1|^^~~|x^^^&&")
    assert fields_of(doc, "NTE") == {}
    assert fields_of(doc, "PV1") == {"1": "1"}
    assert fields_of(doc, "OBX") == {"1": "1", "3.1": "x"}
    assert render_document(doc) == f"{MSH}\rNTE\rPV1|1\rOBX|1||x^"


def test_raw_text_is_normalized_first() -> None:
    raw = f"\x0b\ufeff{MSH}\r\nPID|1||X  \n\x1c\r"
    assert parse_document(raw)["segments"][1] == {"id": "PID", "fields": {"1": "1", "3": "X"}}


def test_multiline_value_with_cr_separators_round_trips() -> None:
    text = f"{MSH}\rOBX|1|TX|NOTE||first line\nsecond line\r\nNTE|1"
    doc = parse_document(text)
    assert fields_of(doc, "OBX")["5"] == "first line\nsecond line"
    assert len(doc["segments"]) == 3
    assert render_document(doc) == f"{MSH}\rOBX|1|TX|NOTE||first line\\X0A\\second line\rNTE|1"


# -- escapes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "text"),
    [
        ("a\\F\\b", "a|b"),
        ("a\\S\\b", "a^b"),
        ("a\\T\\b", "a&b"),
        ("a\\R\\b", "a~b"),
        ("a\\E\\b", "a\\b"),
        ("\\F\\\\S\\\\T\\\\R\\\\E\\", "|^&~\\"),
        ("C:\\E\\temp\\E\\x", "C:\\temp\\x"),
        ("\\X0D\\", "\r"),
        ("\\X0D0A\\", "\r\n"),
        ("\\X00\\x", "\x00x"),
        ("caf\\XC3A9\\", "café"),
        ("\\X7C\\", "|"),
        ("\\X41\\", "A"),
        ("a\\.br\\b", "a\\.br\\b"),
        ("\\H\\bold\\N\\", "\\H\\bold\\N\\"),
        (
            "\\.sp2\\\\.in+4\\\\.ti-2\\\\.sk3\\\\.ce\\\\.fi\\\\.nf\\",
            "\\.sp2\\\\.in+4\\\\.ti-2\\\\.sk3\\\\.ce\\\\.fi\\\\.nf\\",
        ),
        ("\\C2842\\x\\C2B42\\", "\\C2842\\x\\C2B42\\"),
        ("\\M244241\\", "\\M244241\\"),
        ("\\Zlocal\\", "\\Zlocal\\"),
        ('""', '""'),
    ],
)
def test_unescape(wire: str, text: str) -> None:
    assert value(f"{MSH}\rNTE|1||{wire}") == text


@pytest.mark.parametrize(
    "wire",
    [
        "a\\F\\b",
        "\\F\\\\S\\\\T\\\\R\\\\E\\",
        "C:\\E\\temp\\E\\x",
        "\\X0D\\",
        "a\\.br\\b",
        "\\H\\bold\\N\\",
        "\\.sp2\\",
        "\\C2842\\x\\M244241\\",
        "\\Zlocal\\",
        "a\\E\\.br\\E\\b",  # the text "\.br\" (not a line break)
        "\\E\\E\\E\\",  # the text "\E\"
        "\\E\\H\\E\\N\\E\\",  # the text "\H\N\"
        "\\.br\\\\E\\",  # a line break then a backslash
        "\\E\\\\E\\",  # two backslashes
    ],
)
def test_canonical_escapes_render_back_exactly(wire: str) -> None:
    text = f"{MSH}\rNTE|1||{wire}"
    assert roundtrip(text) == text


def test_kept_sequence_and_literal_text_stay_distinct() -> None:
    kept = value(f"{MSH}\rNTE|1||a\\.br\\b")
    literal = value(f"{MSH}\rNTE|1||a\\E\\.br\\E\\b")
    assert kept == "a\\.br\\b"
    # a literal escape char that would read as the start of a kept sequence is written \E\
    assert literal == "a\\E\\.br\\b"
    assert kept != literal


def test_non_canonical_escapes_render_equivalently() -> None:
    text = f"{MSH}\rNTE|1||\\X41\\\\X7C\\"
    doc = parse_document(text)
    assert fields_of(doc, "NTE")["3"] == "A|"
    assert render_document(doc) == f"{MSH}\rNTE|1||A\\F\\"


def test_truncation_character() -> None:
    msh = MSH.replace("^~\\&", "^~\\&#")
    doc = parse_document(f"{msh}\rNTE|1||50\\P\\ off")
    assert doc["delimiters"]["truncation"] == "#"
    assert fields_of(doc, "NTE")["3"] == "50# off"
    assert fields_of(doc, "MSH")["2"] == "^~\\&#"
    assert render_document(doc) == f"{msh}\rNTE|1||50\\P\\ off"


def test_hex_escape_uses_message_charset() -> None:
    msh = f"{MSH}||||||8859/1"
    assert value(f"{msh}\rNTE|1||caf\\XE9\\") == "café"
    with pytest.raises(Er7Error, match="not valid utf-8") as info:
        parse_document(f"{MSH}\rNTE|1||caf\\XE9\\")
    assert info.value.field == "NTE-3"


def test_control_characters_and_delimiters_are_escaped_on_render() -> None:
    doc = parse_document(f"{MSH}\rNTE|1")
    doc["segments"][1]["fields"]["3"] = "a|b^c&d~e\\f\rg\x1ch"
    rendered = render_document(doc)
    assert rendered == f"{MSH}\rNTE|1||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\X0D\\g\\X1C\\h"
    assert fields_of(parse_document(rendered), "NTE")["3"] == "a|b^c&d~e\\f\rg\x1ch"


def test_lf_in_a_value_is_always_rendered_as_a_hex_escape() -> None:
    # a receiver that reads LF as a segment separator would otherwise split the segment there
    doc = parse_document(f"{MSH}\rNTE|1||first\\X0A\\second|x")
    assert fields_of(doc, "NTE") == {"1": "1", "3": "first\nsecond", "4": "x"}
    rendered = render_document(doc)
    assert rendered == f"{MSH}\rNTE|1||first\\X0A\\second|x"
    assert "\n" not in rendered
    assert parse_document(rendered)["segments"] == doc["segments"]
    assert parse_document(rendered.replace("\r", "\n"))["segments"] == doc["segments"]


def test_lf_and_trailing_blanks_fall_back_to_hex_when_needed() -> None:
    doc = parse_document(f"{MSH}\rNTE|1")
    doc["segments"][1]["fields"]["3"] = "text\nPID|looks like a segment "
    rendered = render_document(doc)
    assert rendered == f"{MSH}\rNTE|1||text\\X0A\\PID\\F\\looks like a segment\\X20\\"
    assert fields_of(parse_document(rendered), "NTE")["3"] == "text\nPID|looks like a segment "


def test_escaping_canonical_value() -> None:
    esc = escaping_for(Delimiters())
    assert esc.canonical("plain") == "plain"
    assert esc.canonical("a\\b") == "a\\b"
    assert esc.canonical("\\E\\") == "\\"  # "\E\" in a value is one literal escape char
    assert esc.canonical("\\.br\\") == "\\.br\\"


# -- delimiters, truncation and Z-segments from the corpus --------------------------------------


def test_corpus_047_custom_field_and_component_separators() -> None:
    text = corpus_text("047-NOTYPE-nover.hl7")
    with pytest.raises(Er7Error, match=r"MSH-9"):
        parse_document(text)  # no MSH-9/MSH-10: not a complete message for the lake
    delimiters, segments = parse_segments(text)
    assert (delimiters.field, delimiters.component) == ("$", "%")
    assert segments[1] == {
        "id": "PID",
        "fields": {"3": "555-44-4444", "5.1": "EVERYWOMAN", "5.2": "EVE", "5.3": "E", "5.6": "L"},
    }


def test_corpus_068_custom_delimiters() -> None:
    doc = parse_document(corpus_text("068-ADT_A01-2.5.hl7"))
    assert doc["delimiters"] == {
        "field": "#",
        "component": "!",
        "repetition": "@",
        "escape": "%",
        "subcomponent": "*",
        "truncation": None,
    }
    assert doc["header"]["messageType"] == "ADT^A01"
    assert fields_of(doc, "MSH")["1"] == "#" and fields_of(doc, "MSH")["2"] == "!@%*"
    assert fields_of(doc, "PID") == {
        "1": "1",
        "3.1": "12345",
        "3.4": "MRN",
        "5.1": "DOE",
        "5.2": "JOHN",
        "5.3": "A",
        "7": "19800101",
        "8": "M",
    }


@pytest.mark.parametrize("name", ["049-RSP_K22-2.7.hl7", "076-OML_O21-2.5.1.hl7"])
def test_corpus_truncation_character(name: str) -> None:
    doc = parse_document(corpus_text(name))
    assert doc["delimiters"]["truncation"] == "#"
    assert fields_of(doc, "MSH")["2"] == "^~\\&#"


def test_corpus_z_segments() -> None:
    doc = parse_document(corpus_text("070-ADT_A01-2.5.hl7"))
    assert fields_of(doc, "ZVN") == {
        "1": "1",
        "2": "CUSTOM_VENDOR_DATA",
        "3.1": "VALUE1",
        "3.2": "VALUE2",
        "3.3": "VALUE3",
    }
    assert fields_of(doc, "ZPD")["5"] == "EXTENDED_FIELD_4"
    doc = parse_document(corpus_text("063-ADT_A01-2.4.hl7"))
    assert fields_of(doc, "ZNM") == {"3": "(763)257-8511"}
    doc = parse_document(corpus_text("077-RDE_O01-2.3.hl7"))
    assert fields_of(doc, "ZVI")["1"] == '""'
    assert fields_of(doc, "ZAL")["12.2"] == "Bognar"


def test_corpus_067_escaped_delimiters() -> None:
    doc = parse_document(corpus_text("067-ADT_A01-2.5.hl7"))
    assert fields_of(doc, "PID")["5.1"] == "DOE&SMITH"
    assert fields_of(doc, "PID")["5.2"] == "JOHN^JANE"
    assert fields_of(doc, "OBX")["5"] == (
        "Result contains pipe | and ampersand & and caret ^ and tilde ~ and backslash \\ chars"
    )


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "index", "seg_id", "field", "reason"),
    [
        ("EVN|A01\rPV1|1\r1PD|1", 4, None, None, "'1PD' is not a valid segment id"),
        ("EVN|A01\rP-D|1", 3, None, None, "'P-D' is not a valid segment id"),
        ("EVN|A01\rpid|1", 3, None, None, "'pid' is not a valid segment id"),
        (
            "EVN|A01\rPIDX|1",
            3,
            "PID",
            None,
            "expected the field separator '|' after the segment id, found 'X'",
        ),
        # unknown, unterminated and empty escape sequences are kept (test_escapes_kept.py)
        ("PID|1||X||A^B&C\\XFF\\", 2, "PID", "PID-5.2.2", "hex escape \\XFF\\ is not valid utf-8"),
        ("PID|1||X~Y\\XC3\\||", 2, "PID", "PID-3[2]", "hex escape \\XC3\\ is not valid utf-8"),
        ("PID|1\r" + MSH, 3, "MSH", None, "split first"),
        ("BTS|1", 2, "BTS", None, "split first"),
    ],
)
def test_parse_errors(body: str, index: int, seg_id: str | None, field: str | None, reason: str) -> None:
    with pytest.raises(Er7Error) as info:
        parse_document(f"{MSH}\r{body}")
    err = info.value
    assert (err.segment_index, err.segment_id, err.field) == (index, seg_id, field)
    assert reason in err.reason


def test_error_message_format() -> None:
    with pytest.raises(Er7Error) as info:
        parse_document(f"{MSH}\rEVN|A01\rPV1|1\r1PD|1")
    assert str(info.value) == "segment 4: '1PD' is not a valid segment id"
    with pytest.raises(Er7Error) as info:
        parse_document(f"{MSH}\rPID|1||X||DOE\\XFF\\^JOHN")
    assert str(info.value).startswith("segment 2 (PID), field PID-5.1: hex escape \\XFF\\ is not valid")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", None),
        ("PID|1", None),
        ("MSH|^~&|A|B|C|D|2024||ADT^A01|1|P|2.5", "MSH-2"),
        ("MSH|^~\\&|A|B|C|D|2024|||1|P|2.5", "MSH-9"),
    ],
)
def test_header_errors_propagate(text: str, field: str | None) -> None:
    with pytest.raises(Er7Error) as info:
        parse_document(text)
    assert info.value.field == field


# -- rendering ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "segment",
    [
        "PID|x^",  # lone component 1
        "PID|x&",  # lone subcomponent 1
        "PID|x&^y",
        "PID|^x",
        "PID|~x",
        "PID|a~~b^c",
        "PID|&x",
        "PID|||||||||||||||||||||||||||||||z",
        "OBX|1|a&b&c^d",
    ],
)
def test_structure_separators_render_exactly(segment: str) -> None:
    text = f"{MSH}\r{segment}"
    assert roundtrip(text) == text


def test_render_uses_document_delimiters_for_msh() -> None:
    doc = parse_document(f"{MSH}\rPID|1||a^b")
    doc["delimiters"] = Delimiters("#", "!", "@", "%", "*", "$").to_dict()
    assert (
        render_document(doc)
        == "MSH#!@%*$#APP#FAC#REC#RFAC#20240101120000##ADT!A01!ADT_A01#CTRL1#P#2.5\rPID#1##a!b"
    )


def test_render_sorts_keys_given_out_of_order() -> None:
    doc = parse_document(MSH)
    doc["segments"].append({"id": "ZZ1", "fields": {"3.2": "b", "1": "one", "3.1": "a", "2[2]": "r"}})
    assert render_document(doc).split("\r")[1] == "ZZ1|one|~r|a^b"


@pytest.mark.parametrize(
    "fields",
    [
        {"3": "x", "3.1": "y"},
        {"3.1": "x", "3.1.1": "y"},
        {"3": "x", "3[1]": "y"},
        {"3.1.1": "x", "3.1": "y"},
    ],
)
def test_render_rejects_conflicting_keys(fields: dict[str, str]) -> None:
    doc = parse_document(MSH)
    doc["segments"].append({"id": "ZZ1", "fields": fields})
    with pytest.raises(Er7Error, match="conflicts"):
        render_document(doc)


@pytest.mark.parametrize("key", ["0", "3.0", "a", "3[0]", "3.1.1.1", "3[2", " 3", "+3"])
def test_render_rejects_malformed_keys(key: str) -> None:
    doc = parse_document(MSH)
    doc["segments"].append({"id": "ZZ1", "fields": {key: "x"}})
    with pytest.raises(Er7Error, match="invalid field key") as info:
        render_document(doc)
    assert info.value.segment_index == 2


@pytest.mark.parametrize(
    "delimiters",
    [
        Delimiters(component="|"),
        Delimiters(field="||"),
        Delimiters(escape="^~"),
        Delimiters(subcomponent=" "),
        Delimiters(truncation="&"),
    ],
)
def test_render_rejects_invalid_delimiters(delimiters: Delimiters) -> None:
    doc = parse_document(MSH)
    doc["delimiters"] = delimiters.to_dict()
    with pytest.raises(Er7Error):
        render_document(doc)


def test_render_rejects_bad_segment_id() -> None:
    doc = parse_document(MSH)
    doc["segments"].append({"id": "zz", "fields": {}})
    with pytest.raises(Er7Error, match="not a valid segment id"):
        render_document(doc)
