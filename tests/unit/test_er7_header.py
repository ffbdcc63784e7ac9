"""hub.er7 header level: Delimiters (MSH-1/MSH-2), read_header, Er7Error."""

from __future__ import annotations

import pickle

import pytest

from hub.er7 import Delimiters, Er7Error, Header, read_header

MSH = (
    "MSH|^~\\&|SEND^SENDER.OID^ISO|FAC|^RECV.OID^ISO|RFAC|20240101120000+0100^S||ADT^A01^ADT_A01|CTRL-1|P^T"
    "|2.5.1^USA|||AL|NE|USA|UNICODE UTF-8~8859/1"
)


# -- Delimiters --------------------------------------------------------------------------------


def test_default_delimiters() -> None:
    d = Delimiters.from_msh("MSH|^~\\&|A")
    assert d == Delimiters()
    assert d.to_dict() == {
        "field": "|",
        "component": "^",
        "repetition": "~",
        "escape": "\\",
        "subcomponent": "&",
        "truncation": None,
    }
    assert d.encoding_characters == "^~\\&"


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ("MSH|^~\\&#|A", Delimiters(truncation="#")),
        ("MSH$%~\\&$GHH LAB", Delimiters(field="$", component="%")),
        ("MSH#!@%*#SENDER", Delimiters("#", "!", "@", "%", "*")),
        ("FHS|^~\\&", Delimiters()),
        ("BHS|^~\\&|x", Delimiters()),
        ("MSH|^~\\&", Delimiters()),
    ],
)
def test_delimiters_variants(segment: str, expected: Delimiters) -> None:
    assert Delimiters.from_msh(segment) == expected


@pytest.mark.parametrize(
    ("segment", "field", "reason_part"),
    [
        ("PID|^~\\&|A", None, "expected an MSH, FHS or BHS segment"),
        ("MSH", "MSH-1", "field separator is missing"),
        ("MSHA^~\\&A", "MSH-1", "must not be a letter"),
        ("MSH ^~\\& ", "MSH-1", "must not be a letter, digit or blank"),
        ("MSH|^~&|A", "MSH-2", "must be 4 characters"),
        ("MSH|^\\&|A", "MSH-2", "must be 4 characters"),
        ("MSH|^~\\&#!|A", "MSH-2", "must be 4 characters"),
        ("MSH||A", "MSH-2", "must be 4 characters"),
        ("MSH|^~ &|A", "MSH-2", "contain ' '"),
        ("MSH|^~\\A|A", "MSH-2", "contain 'A'"),
        ("MSH|^&&^|A", "MSH-2", "twice"),
        ("MSH|^~\\\\&|A", "MSH-2", "twice"),
        ("MSH|^~\\^|A", "MSH-2", "twice"),
        ("BHS|^~&", "BHS-2", "must be 4 characters"),
    ],
)
def test_delimiters_errors(segment: str, field: str | None, reason_part: str) -> None:
    with pytest.raises(Er7Error) as info:
        Delimiters.from_msh(segment)
    assert info.value.field == field
    assert reason_part in info.value.reason


def test_field_separator_reused_as_encoding_character_ends_msh2_early() -> None:
    # MSH^^~\&^: MSH-2 ends at the first '^', so it is empty
    with pytest.raises(Er7Error) as info:
        Delimiters.from_msh("MSH^^~\\&^A")
    assert info.value.reason.startswith("encoding characters '' must be 4 characters")


# -- read_header -------------------------------------------------------------------------------


def test_read_header_fields() -> None:
    header = read_header(MSH + "\rPID|1")
    assert header == Header(
        message_type="ADT^A01",
        control_id="CTRL-1",
        trigger="A01",
        message_structure="ADT_A01",
        version="2.5.1",
        sending_application="SEND",
        sending_facility="FAC",
        receiving_application="RECV.OID",
        receiving_facility="RFAC",
        date_time="20240101120000+0100",
        charset="UNICODE UTF-8",
        processing_id="P",
        accept_ack_type="AL",
        app_ack_type="NE",
        delimiters=Delimiters(),
    )
    assert header.to_dict() == {
        "messageType": "ADT^A01",
        "version": "2.5.1",
        "controlId": "CTRL-1",
        "sendingApplication": "SEND",
        "sendingFacility": "FAC",
        "receivingApplication": "RECV.OID",
        "receivingFacility": "RFAC",
        "dateTime": "20240101120000+0100",
        "charset": "UNICODE UTF-8",
    }


def test_read_header_minimal_and_missing_optionals() -> None:
    header = read_header("MSH|^~\\&|||||||ORU|42")
    assert header.message_type == "ORU"
    assert header.trigger is None and header.message_structure is None
    assert header.version is None and header.charset is None and header.sending_application is None
    assert header.control_id == "42"


def test_read_header_custom_delimiters_and_unescaping() -> None:
    header = read_header("MSH#!@%*#SEND%T%X%E%#FAC#RECV#FAC#2026##ADT!A01#MSG%F%7#P#2.5\rPID#1")
    assert header.message_type == "ADT^A01"  # always joined with '^', whatever MSH-2 says
    assert header.sending_application == "SEND*X%"
    assert header.control_id == "MSG#7"
    assert header.delimiters == Delimiters("#", "!", "@", "%", "*")


def test_read_header_only_reads_first_segment() -> None:
    header = read_header("MSH|^~\\&|A|B|C|D|2024||ADT^A04|1|P|2.3\rMSH|^~\\&|X|Y|Z|W|2025||ORU^R01|2|P|2.5")
    assert (header.message_type, header.control_id, header.version) == ("ADT^A04", "1", "2.3")


def test_read_header_escapes_and_unknown_sequences_are_lenient() -> None:
    header = read_header("MSH|^~\\&|A\\T\\B|F\\X41\\C|R\\H\\X|F|2024||ADT^A01|1|P|2.5")
    assert header.sending_application == "A&B"
    assert header.sending_facility == "FAC"
    assert header.receiving_application == "R\\H\\X"


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("", None, "message is empty"),
        ("PID|1", None, "first segment is PID, expected MSH"),
        ("MSH|^~&|A|B|C|D|2024||ADT^A01|1|P|2.5", "MSH-2", None),
        ("MSH|^~\\&|A|B|C|D|2024|||1|P|2.5", "MSH-9", "message type (MSH-9) is missing"),
        ("MSH|^~\\&|A|B|C|D|2024", "MSH-9", "message type (MSH-9) is missing"),
        ("MSH|^~\\&|A|B|C|D|2024||^A01|1|P|2.5", "MSH-9.1", "message code (MSH-9.1) is missing"),
    ],
)
def test_read_header_errors(text: str, field: str | None, reason: str | None) -> None:
    with pytest.raises(Er7Error) as info:
        read_header(text)
    err = info.value
    assert err.field == field
    if reason:
        assert err.reason == reason
    if text:
        assert err.segment_index == 1
        assert err.segment_id == text[:3]


def test_read_header_batch_hint() -> None:
    with pytest.raises(Er7Error, match=r"first segment is FHS, expected MSH .*split the batch"):
        read_header("FHS|^~\\&\rMSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5")


# -- Er7Error ----------------------------------------------------------------------------------


def test_error_str_and_dict() -> None:
    err = Er7Error("message type is missing", segment_index=1, segment_id="MSH", field="MSH-9")
    assert str(err) == "segment 1 (MSH), field MSH-9: message type is missing"
    assert err.to_dict() == {
        "reason": "message type is missing",
        "segment": "MSH",
        "segmentIndex": 1,
        "field": "MSH-9",
    }
    assert str(Er7Error("'P1D' is not a valid segment id", segment_index=4)) == (
        "segment 4: 'P1D' is not a valid segment id"
    )
    assert str(Er7Error("message is empty")) == "message is empty"
    assert Er7Error("x").to_dict() == {"reason": "x", "segment": None, "segmentIndex": None, "field": None}
    assert isinstance(err, ValueError)


def test_error_locate_fills_only_unknown_parts_and_pickles() -> None:
    err = Er7Error("bad", field="PID-5.1").locate(segment_index=3, segment_id="PID", field="PID-5")
    assert (err.segment_index, err.segment_id, err.field) == (3, "PID", "PID-5.1")
    copy = pickle.loads(pickle.dumps(err))
    assert copy.to_dict() == err.to_dict()


def test_read_header_hex_escapes_use_msh18() -> None:
    latin = read_header("MSH|^~\\&|CAF\\XC9\\|F|R|F|2024||ADT^A01|1|P|2.5||||||8859/1")
    assert latin.sending_application == "CAFÉ"
    utf8 = read_header("MSH|^~\\&|CAF\\XC389\\|F|R|F|2024||ADT^A01|1|P|2.5")
    assert utf8.sending_application == "CAFÉ"
