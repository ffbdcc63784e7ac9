"""S3 keys in the lake: a partition value never escapes its segment, is never empty, never longer than 64
characters; a date partition is a date or `unknown`."""

from __future__ import annotations

import pytest

from lake.layout import BATCHES, ERRORS, PARSED, RAW, object_key, sanitize


def key(**changes: str) -> str:
    args = {
        "source": "hospital-a",
        "message_type": "ADT^A01",
        "received_at": "2026-01-02T03:04:05.000Z",
        "message_id": "01JKEY",
    }
    return object_key(RAW, **{**args, **changes})


def test_a_plain_key_is_hive_partitioned() -> None:
    assert key() == "raw/source=hospital-a/type=ADT_A01/date=2026-01-02/01JKEY.hl7"
    assert object_key(PARSED, source="a", message_type="b", received_at="2026-01-02", message_id="c") == (
        "parsed/source=a/type=b/date=2026-01-02/c.json"
    )
    assert key(suffix="bin").endswith("/01JKEY.bin")


@pytest.mark.parametrize("area", [ERRORS, BATCHES])
def test_json_areas(area: str) -> None:
    assert object_key(area, source="a", message_type="b", received_at="2026-01-02", message_id="c").endswith(
        "/c.json"
    )


def test_an_unknown_area_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown lake area"):
        object_key("tmp", source="a", message_type="b", received_at="2026-01-02", message_id="c")


# --- the 64-character cap -----------------------------------------------------------------------


def test_sanitize_caps_at_64_characters() -> None:
    assert sanitize("a" * 65) == "a" * 64
    assert sanitize("b" * 1000) == "b" * 64
    assert sanitize("c" * 64) == "c" * 64


def test_every_partition_and_the_id_are_capped_in_the_key() -> None:
    long = "x" * 200
    parts = key(source=long, message_type=long, message_id=long).split("/")
    assert parts == ["raw", f"source={'x' * 64}", f"type={'x' * 64}", "date=2026-01-02", f"{'x' * 64}.hl7"]


# --- the date validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "received_at",
    ["", "yesterday", "2026/01/02T00:00:00Z", "../../../etc", "2026-1-2T00:00:00Z", "20260102T000000Z",
     "abcd-ef-ghT00", "2026-01-0/", "2026-01-02".replace("-", "/")],
)  # fmt: skip
def test_a_received_at_that_is_not_a_date_gives_date_unknown(received_at: str) -> None:
    parts = key(received_at=received_at).split("/")
    assert parts[3] == "date=unknown" and len(parts) == 5


def test_the_date_partition_is_the_first_ten_characters_of_a_valid_timestamp() -> None:
    assert "/date=2026-12-31/" in key(received_at="2026-12-31T23:59:59.999Z")
    assert "/date=2026-12-31/" in key(received_at="2026-12-31")


# --- the id (and every partition value) sanitised -----------------------------------------------


@pytest.mark.parametrize(
    "unsafe",
    ["../../other/x", "a/b", "a=b", "..", "", "/", "a b?c#d", "é", "a\x00b", "\\..\\x", ".hidden", "x."],
)
def test_an_unsafe_message_id_stays_one_safe_segment(unsafe: str) -> None:
    parts = key(message_id=unsafe).split("/")
    assert parts[:4] == ["raw", "source=hospital-a", "type=ADT_A01", "date=2026-01-02"]
    assert len(parts) == 5
    name = parts[4].removesuffix(".hl7")
    assert name == sanitize(unsafe)
    assert name and ".." not in name and "=" not in name and not name.startswith(".")
    assert set(name) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


@pytest.mark.parametrize(
    ("raw", "safe"),
    [("../../other/x", "other_x"), ("a/b", "a_b"), ("a=b", "a_b"), ("..", "unknown"), ("", "unknown"),
     ("ADT^A01", "ADT_A01"), (".hidden", "hidden"), ("01J-x.y_z", "01J-x.y_z")],
)  # fmt: skip
def test_sanitize_replaces_runs_of_unsafe_characters_and_strips_dots(raw: str, safe: str) -> None:
    assert sanitize(raw) == safe


@pytest.mark.parametrize("field", ["source", "message_type"])
def test_unsafe_partition_values_never_add_a_segment(field: str) -> None:
    parts = key(**{field: "../x=y/z"}).split("/")
    assert len(parts) == 5 and all(".." not in p for p in parts)
