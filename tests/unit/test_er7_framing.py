"""hub.er7 wire level: normalize, segments, digest, batches, bytes -> text."""

from __future__ import annotations

import hashlib

import pytest

from hub.er7 import (
    Er7Error,
    codec_for,
    decode,
    decode_flagged,
    dedup_digest,
    normalize,
    sniff_charset,
    split_batch,
    split_segments,
)
from tests.conftest import corpus_message

MSH = "MSH|^~\\&|APP|FAC|REC|RFAC|20240101120000||ADT^A01|CTRL1|P|2.5"
PID = "PID|1||MRN1||DOE^JOHN"
PV1 = "PV1|1|I"
EXPECTED = f"{MSH}\r{PID}\r{PV1}"


# -- normalize ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (f"{MSH}\r{PID}\r{PV1}", "CR"),
        (f"{MSH}\r{PID}\r{PV1}\r", "trailing CR"),
        (f"{MSH}\n{PID}\n{PV1}\n", "LF only"),
        (f"{MSH}\r\n{PID}\r\n{PV1}\r\n", "CRLF"),
        (f"{MSH}\r{PID}\r\n{PV1}\r\n", "mixed CR and CRLF"),
        (f"{MSH}\n{PID}\r{PV1}", "CR message with a lone LF before a segment"),
        (f"\x0b{MSH}\r{PID}\r{PV1}\x1c\r", "MLLP framing"),
        (f"\ufeff{MSH}\n{PID}\n{PV1}\n", "BOM"),
        (f"{MSH}\r{PID}\r{PV1}\x00\x00\x00", "NUL padding"),
        (f"{MSH}\r{PID[:3]}\x00{PID[3:]}\r\x00{PV1}", "NUL inside segments"),
        (f"\r\n\n{MSH}\r{PID}\r{PV1}", "leading blank lines"),
        (f"{MSH}   \r{PID}\t\r{PV1}  \r\n  \n", "trailing blanks and whitespace"),
        (f"{MSH}\r\r{PID}\r  \r{PV1}", "blank segments"),
        (f"{MSH}\n\n{PID}\n\n{PV1}", "blank lines between LF segments"),
        (f"{MSH}\r{PID}\r{PV1}\r\x0b\r\r\n", "stray MLLP start byte at the end (corpus 057)"),
    ],
)
def test_normalize_variants(raw: str, why: str) -> None:
    assert normalize(raw) == EXPECTED, why


def test_normalize_keeps_lf_inside_a_value_when_cr_separates_segments() -> None:
    obx = "OBX|1|TX|NOTE||line one\nline two\n\nline four|||N"
    raw = f"{MSH}\r{obx}\r{PV1}\r"
    assert normalize(raw) == f"{MSH}\r{obx}\r{PV1}"


def test_normalize_lone_lf_followed_by_segment_start_is_a_separator_with_cr_present() -> None:
    obx = "OBX|1|TX|NOTE||text"
    raw = f"{MSH}\r{obx}\nNTE|1|L|comment\r{PV1}"
    assert split_segments(normalize(raw)) == [MSH, obx, "NTE|1|L|comment", PV1]


def test_normalize_lf_followed_by_lowercase_or_no_separator_stays_in_value() -> None:
    raw = f"{MSH}\rOBX|1|TX|N||Abc\nNTEs and more\nABC def\r{PV1}"
    assert split_segments(normalize(raw))[1] == "OBX|1|TX|N||Abc\nNTEs and more\nABC def"


def test_normalize_lone_lf_uses_the_message_field_separator() -> None:
    msh = "MSH#!@%*#A#B#C#D#2026##ADT!A01#X#P#2.5"
    raw = f"{msh}\rOBX#1#TX\nPID#1\nPID|not a segment here\r"
    assert split_segments(normalize(raw)) == [msh, "OBX#1#TX", "PID#1\nPID|not a segment here"]


def test_normalize_is_idempotent_and_empty_safe() -> None:
    once = normalize(f"\x0b{MSH}\r\n{PID}  \r\n{PV1}\x1c\r")
    assert normalize(once) == once
    assert normalize("") == ""
    assert normalize(" \r\n\x00\x1c") == ""


def test_split_segments() -> None:
    assert split_segments(EXPECTED) == [MSH, PID, PV1]
    assert split_segments("") == []


def test_dedup_digest_is_sha256_of_normalized_utf8() -> None:
    assert dedup_digest(EXPECTED) == hashlib.sha256(EXPECTED.encode()).hexdigest()
    assert dedup_digest(normalize(f"{MSH}\n{PID}\n{PV1}\n")) == dedup_digest(
        normalize(f"{MSH}\r{PID}\r{PV1}")
    )
    assert dedup_digest("MSH|é") == hashlib.sha256("MSH|é".encode()).hexdigest()


# -- batches -----------------------------------------------------------------------------------

MSH2 = MSH.replace("CTRL1", "CTRL2")


def test_single_message_is_a_batch_of_one() -> None:
    batch = split_batch(EXPECTED)
    assert batch.messages == [EXPECTED]
    assert (batch.header_segments, batch.trailer_segments, batch.declared_counts, batch.problems) == (
        [],
        [],
        {},
        [],
    )


def test_several_messages_without_envelope_are_split() -> None:
    batch = split_batch(f"{MSH}\r{PID}\r{MSH2}\r{PID}")
    assert batch.messages == [f"{MSH}\r{PID}", f"{MSH2}\r{PID}"]
    assert batch.problems == []


def test_envelope_is_removed_and_counts_checked() -> None:
    body = f"FHS|^~\\&|F\rBHS|^~\\&|B\r{MSH}\r{PID}\r{MSH2}\r{PID}\rBTS|2\rFTS|1"
    batch = split_batch(body)
    assert batch.messages == [f"{MSH}\r{PID}", f"{MSH2}\r{PID}"]
    assert batch.header_segments == ["FHS|^~\\&|F", "BHS|^~\\&|B"]
    assert batch.trailer_segments == ["BTS|2", "FTS|1"]
    assert batch.declared_counts == {"BTS-1": 2, "FTS-1": 1}
    assert batch.problems == []


def test_count_mismatches_are_problems_not_exceptions() -> None:
    body = f"FHS|^~\\&\rBHS|^~\\&\r{MSH}\rBTS|3\rFTS|2"
    batch = split_batch(body)
    assert len(batch.messages) == 1
    assert [(p.field, p.segment_index) for p in batch.problems] == [("BTS-1", 4), ("FTS-1", 5)]
    assert "declares 3 messages, found 1" in batch.problems[0].reason
    assert "declares 2 batches, found 1" in batch.problems[1].reason


def test_non_numeric_count_is_a_problem() -> None:
    batch = split_batch(f"BHS|^~\\&\r{MSH}\rBTS|two")
    assert batch.problems[0].field == "BTS-1"
    assert batch.declared_counts == {}


def test_missing_trailers_are_problems() -> None:
    batch = split_batch(f"FHS|^~\\&\rBHS|^~\\&\r{MSH}")
    assert {p.reason for p in batch.problems} == {"batch has no BTS", "file has no FTS"}


def test_second_bhs_without_bts_raises() -> None:
    with pytest.raises(Er7Error) as info:
        split_batch(f"BHS|^~\\&\r{MSH}\rBHS|^~\\&\r{PID}")
    assert (info.value.segment_index, info.value.segment_id) == (3, "BHS")


def test_empty_envelope_is_a_batch_of_no_messages() -> None:
    batch = split_batch("FHS|^~\\&\rBHS|^~\\&\rBTS|0\rFTS|1")
    assert batch.messages == [] and batch.problems == []
    assert batch.declared_counts == {"BTS-1": 0, "FTS-1": 1}


@pytest.mark.parametrize(
    ("body", "index", "seg_id"),
    [
        (f"{PID}\r{MSH}", 1, "PID"),
        (f"BHS|^~\\&\r{PID}\r{MSH}", 2, "PID"),
        (f"BHS|^~\\&\r{MSH}\rBTS|1\r{PID}", 4, "PID"),
        (f"FHS|^~\\&\r{MSH}\rFTS|0\r{MSH2}", 4, "MSH"),
    ],
)
def test_segments_outside_messages_raise(body: str, index: int, seg_id: str) -> None:
    with pytest.raises(Er7Error) as info:
        split_batch(body)
    assert (info.value.segment_index, info.value.segment_id) == (index, seg_id)


def test_empty_body_raises() -> None:
    with pytest.raises(Er7Error, match="empty"):
        split_batch("")


# -- charset / decode --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("ASCII", "ascii"),
        ("8859/1", "iso8859-1"),
        ("8859/15", "iso8859-15"),
        ("UNICODE UTF-8", "utf-8"),
        ("unicode  utf-8", "utf-8"),
        ("UNICODE", "utf-16"),
        ("ISO IR100", "iso8859-1"),
        ("ISO IR192", "utf-8"),
        ("GB 18030-2000", "gb18030"),
        ("KS X 1001", "euc_kr"),
        ("cp1252", "cp1252"),
        ("windows-1252", "cp1252"),
        ("CNS 11643-1992", None),
        ("rot13", None),
        ("nonsense", None),
    ],
)
def test_codec_for(name: str, codec: str | None) -> None:
    assert codec_for(name) == codec


def test_sniff_charset_reads_msh18_from_bytes() -> None:
    msh = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5||||||8859/1~UNICODE UTF-8\rPID|1"
    assert sniff_charset(msh) == "8859/1"
    assert sniff_charset(b"\x0b" + msh) == "8859/1"
    assert sniff_charset(b"\xef\xbb\xbf" + msh) == "8859/1"
    assert sniff_charset(b"FHS|^~\\&\rBHS|^~\\&\n" + msh) == "8859/1"
    assert sniff_charset(b"MSH|^~\\&|A|B\rPID|1|||||||||||||||||not msh18") is None
    assert sniff_charset(b"PID|1") is None
    assert sniff_charset("MSH|^~\\&|A||||||X^Y|1|P|2.5||||||UNICODE\r".encode("utf-16")) == "UNICODE"


def test_decode_defaults_to_utf8_and_strips_bom() -> None:
    assert decode("\ufeffMSH|^~\\&|MÜLLER".encode()) == "MSH|^~\\&|MÜLLER"
    assert decode(b"\x0b\xef\xbb\xbfMSH|^~\\&|A") == "MSH|^~\\&|A"  # MLLP start block goes too


def test_decode_uses_msh18_and_declared_wins() -> None:
    latin = "MSH|^~\\&|MÜLLER|B|C|D|2024||ADT^A01|1|P|2.5||||||8859/1\r".encode("latin-1")
    assert "MÜLLER" in decode(latin)
    assert "MÃ\x9c" not in decode(latin)
    utf8_declared_latin = "MSH|^~\\&|MÜLLER|B|C|D|2024||ADT^A01|1|P|2.5||||||8859/1\r".encode()
    assert "MÜLLER" in decode(utf8_declared_latin, "utf-8")
    assert "MSH" in decode("MSH|^~\\&|Ä".encode("cp1252"), "windows-1252")


def test_decode_utf16_message() -> None:
    text = "MSH|^~\\&|日本|B|C|D|2024||ADT^A01|1|P|2.5||||||UNICODE\r"
    assert decode(text.encode("utf-16")) == text


def test_decode_error_names_byte_offset_and_field() -> None:
    data = b"MSH|^~\\&|GHH LAB|ELAB\x963"
    with pytest.raises(Er7Error) as info:
        decode(data)
    err = info.value
    assert err.reason == (
        "byte 0x96 at offset 21 is not valid UTF-8 (declared charset: none; set MSH-18 or the HTTP charset)"
    )
    assert (err.segment_index, err.segment_id, err.field) == (1, "MSH", "MSH-4")


def test_decode_error_in_a_later_segment_and_component() -> None:
    data = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5||||||ASCII\nEVN|A01\nPID|1||M||DOE^J\xe9R\xd4ME"
    with pytest.raises(Er7Error) as info:
        decode(data)
    err = info.value
    assert (err.segment_index, err.segment_id, err.field) == (3, "PID", "PID-5.2")
    assert "0xe9" in err.reason and "declared charset: ASCII (MSH-18)" in err.reason


def test_decode_unknown_charsets() -> None:
    # outside table 0211 on a plain-ASCII body: read, flagged (see test_lenient_header_and_batches)
    ascii_body = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5||||||KLINGON\r"
    assert decode_flagged(ascii_body) == (ascii_body.decode(), ("unknown-charset",))
    with pytest.raises(Er7Error) as info:
        decode(ascii_body + "NTE|1||Zo\u00eb\r".encode())
    assert (info.value.field, info.value.segment_id) == ("MSH-18", "MSH")
    with pytest.raises(Er7Error, match="HTTP charset"):
        decode(b"MSH|^~\\&|A", "klingon-8")


def test_corpus_048_cp1252() -> None:
    data = corpus_message("048-NOTYPE-nover.hl7")
    assert decode(data, "cp1252") == "MSH|^~\\&|GHH LAB|ELAB–3"
    with pytest.raises(Er7Error) as info:
        decode(data)
    assert info.value.field == "MSH-4"
