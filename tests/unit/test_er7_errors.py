"""hub.er7.errors: the HL7 table 0357 code and the location an Er7Error carries."""

from __future__ import annotations

import pickle

import pytest

from hub.er7 import Er7Error, ErrorCode, ErrorCondition, Location, read_header, split_batch


def test_table_0357_codes_and_texts() -> None:
    assert [(int(c), c.text) for c in ErrorCode] == [
        (100, "Segment sequence error"),
        (101, "Required field missing"),
        (102, "Data type error"),
        (103, "Table value not found"),
        (200, "Unsupported message type"),
        (201, "Unsupported event code"),
        (202, "Unsupported processing id"),
        (203, "Unsupported version id"),
        (204, "Unknown key identifier"),
        (205, "Duplicate key identifier"),
        (206, "Application record locked"),
        (207, "Application internal error"),
    ]


def test_error_code_without_an_explicit_one_comes_from_the_location() -> None:
    assert Er7Error("odd value", field="PID-3").error_code is ErrorCode.DATA_TYPE_ERROR
    assert Er7Error("message is empty").error_code is ErrorCode.APPLICATION_INTERNAL_ERROR
    # an explicit code wins, whatever the reason says
    missing = Er7Error("bts missing", field="MSH-9", code=ErrorCode.SEGMENT_SEQUENCE_ERROR)
    assert missing.error_code is ErrorCode.SEGMENT_SEQUENCE_ERROR


def test_a_located_error_fills_its_code_from_the_new_field() -> None:
    err = Er7Error("bad").locate(segment_index=2, segment_id="PID", field="PID-7")
    assert err.error_code is ErrorCode.DATA_TYPE_ERROR
    assert err.location == Location("PID", 2, "PID-7")


def test_condition_is_value_free_and_survives_pickling() -> None:
    err = Er7Error(
        "value 'JOHN DOE SMITH' is missing",
        segment_id="MSH",
        field="MSH-9",
        code=ErrorCode.REQUIRED_FIELD_MISSING,
    )
    assert err.condition == ErrorCondition(
        ErrorCode.REQUIRED_FIELD_MISSING, "value <14 chars> is missing", Location("MSH", None, "MSH-9")
    )
    copy = pickle.loads(pickle.dumps(err))
    assert copy.code is ErrorCode.REQUIRED_FIELD_MISSING and copy.condition == err.condition


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("MSH|^~\\&|A|B|C|D|2026|||C1|P|2.5", ErrorCode.REQUIRED_FIELD_MISSING),
        ("MSH|^~\\&|A|B|C|D|2026||^A01|C1|P|2.5", ErrorCode.REQUIRED_FIELD_MISSING),
        ("MSH", ErrorCode.REQUIRED_FIELD_MISSING),
        ("PID|1", ErrorCode.SEGMENT_SEQUENCE_ERROR),
        ("MSH|^~|A|B|C|D|2026||ADT^A01|C1|P|2.5", ErrorCode.DATA_TYPE_ERROR),
    ],
)
def test_header_reader_codes(text: str, code: ErrorCode) -> None:
    with pytest.raises(Er7Error) as raised:
        read_header(text)
    assert raised.value.error_code is code


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("PID|1\rMSH|^~\\&|A", ErrorCode.SEGMENT_SEQUENCE_ERROR),
        ("FHS|^~\\&\rPID|1", ErrorCode.SEGMENT_SEQUENCE_ERROR),
        ("MSH|^~\\&|A\rFTS|1\rPID|1", ErrorCode.SEGMENT_SEQUENCE_ERROR),
        ("BHS|^~\\&\rMSH|^~\\&|A\rBHS|^~\\&", ErrorCode.SEGMENT_SEQUENCE_ERROR),
        ("MSH|^~\\&|A\rFHS|^~\\&", ErrorCode.APPLICATION_INTERNAL_ERROR),
    ],
)
def test_batch_splitter_codes(text: str, code: ErrorCode) -> None:
    with pytest.raises(Er7Error) as raised:
        split_batch(text)
    assert raised.value.error_code is code
