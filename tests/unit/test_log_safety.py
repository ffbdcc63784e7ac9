"""Logs an operator can trust: values a sender chose are escaped and bounded centrally, in both formats."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from hl7lake import logs

HOSTILE = "ADT^A01\r\n2026-01-01 00:00:00,000 INFO [gateway] forged line\x1b[2J\x1b[31m\u202eevil\x00"


class Capture:
    def __init__(self, log_format: str) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logs.formatter("gateway", log_format))
        self.log = logging.getLogger(f"test.log_safety.{log_format}")
        self.log.addHandler(self.handler)
        self.log.propagate = False
        self.log.setLevel(logging.DEBUG)

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def close(self) -> None:
        self.log.removeHandler(self.handler)


def text_of(line: str) -> str:
    """The message as an operator reads it (JSON: the decoded `message` field)."""
    return str(json.loads(line)["message"]) if line.startswith("{") else line


@pytest.fixture(params=["text", "json"])
def capture(request: pytest.FixtureRequest) -> Iterator[Capture]:
    result = Capture(request.param)
    yield result
    result.close()


def test_control_characters_and_ansi_escapes_become_visible(capture: Capture) -> None:
    capture.log.info("accepted id=%s type=%s source=%s", "01M8", HOSTILE, "hospital-a")
    [line] = capture.lines()  # CR/LF did not start a forged line
    text = text_of(line)
    assert "\x1b" not in line and "\x00" not in line and "\u202e" not in text
    assert "\\x1b[2J" in text and "\\x0d\\x0a" in text and "\\u202e" in text


def test_each_value_and_every_line_are_bounded(capture: Capture) -> None:
    capture.log.warning("rejected control=%s type=%s", "K" * 5000, "T" * 300)
    capture.log.info("é" * 10_000)  # a call site that formats the value itself
    first, second = capture.lines()
    assert "K" * logs.MAX_VALUE_CHARS in first and "K" * (logs.MAX_VALUE_CHARS + 1) not in first
    assert f"(+{5000 - logs.MAX_VALUE_CHARS} chars)" in first
    assert all(len(line.encode()) <= logs.MAX_LINE_BYTES for line in (first, second))


def test_numbers_keep_their_format_and_odd_objects_are_made_safe(capture: Capture) -> None:
    capture.log.info("took ms=%.1f n=%d obj=%s map=%r", 1.25, 7, ValueError("x\ny"), {"k": "\x1b"})
    [line] = capture.lines()
    text = text_of(line)
    assert "ms=1.2" in text and "n=7" in text and "x\\x0ay" in text and "\x1b" not in text


def test_a_traceback_is_kept_but_its_values_are_escaped(capture: Capture) -> None:
    try:
        raise ValueError("MSH-10 was \x1b]0;pwned\x07")
    except ValueError:
        capture.log.exception("unexpected error id=%s", "E1")
    output = capture.stream.getvalue()
    assert "\x1b" not in output and "\x07" not in output and "ValueError" in output
    assert all(len(line.encode()) <= logs.MAX_LINE_BYTES for line in capture.lines())


def test_json_lines_are_one_object_each_with_the_standard_fields() -> None:
    capture = Capture("json")
    try:
        capture.log.info("accepted id=%s type=%s source=%s bytes=%d", "01M8", "ADT^A01", "hospital-a", 120)
        try:
            raise KeyError("secret")
        except KeyError:
            capture.log.error("handler failed id=%s", "01M9", exc_info=True)
        accepted, failed = (json.loads(line) for line in capture.lines())
    finally:
        capture.close()
    assert {"ts", "level", "service", "logger", "event", "message"} <= set(accepted)
    assert (accepted["level"], accepted["service"], accepted["event"]) == ("INFO", "gateway", "accepted")
    assert (accepted["id"], accepted["type"], accepted["source"], accepted["bytes"]) == (
        "01M8",
        "ADT^A01",
        "hospital-a",
        "120",
    )
    assert accepted["ts"].endswith("+00:00")
    assert failed["exc_type"] == "KeyError" and failed["id"] == "01M9"


def test_a_field_cannot_overwrite_the_standard_ones() -> None:
    event, fields = logs.parse_fields("accepted level=DEBUG service=x id=1")
    assert event == "accepted" and fields == {"id": "1"}


def test_configure_picks_the_format_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        monkeypatch.setenv("HL7LAKE_LOG_FORMAT", "json")
        logs.configure("gateway")
        assert isinstance(root.handlers[0].formatter, logs.JsonFormatter)
        monkeypatch.delenv("HL7LAKE_LOG_FORMAT")
        logs.configure("gateway")
        assert isinstance(root.handlers[0].formatter, logs.TextFormatter)
        monkeypatch.setenv("HL7LAKE_LOG_FORMAT", "xml")
        with pytest.raises(ValueError, match="HL7LAKE_LOG_FORMAT"):
            logs.configure("gateway")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
