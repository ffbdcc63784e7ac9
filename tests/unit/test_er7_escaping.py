"""hub.er7.escaping: the one home of ER7 escaping (the ACK writer's direction, pinned byte for byte).

The staging worker's directions (unescape / escape / canonical) are pinned in test_er7_document.py
and test_er7_properties.py.
"""

from __future__ import annotations

import pytest

from hub.er7 import Delimiters, escaping_for


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("plain text", "plain text"),
        ("a|b^c~d\\e&f", "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f"),
        ("\\.br\\ stays text", "\\E\\.br\\E\\ stays text"),  # no kept sequences in text we write
        ("line\r\nnext\tcol\x00\x7fend", "line next col end"),  # each control run: one blank
        ("#", "#"),  # not a delimiter without MSH-2 truncation
        ("", ""),
    ],
)
def test_escape_text_with_default_delimiters(text: str, wire: str) -> None:
    assert escaping_for(Delimiters()).escape_text(text) == wire


def test_escape_text_uses_the_message_delimiters() -> None:
    d = Delimiters(field="#", component="$", repetition="~", escape="\\", subcomponent="&")
    text = "bad # in $ and ~ and \\ and & and | here\r\nnext"
    assert escaping_for(d).escape_text(text) == (
        "bad \\F\\ in \\S\\ and \\R\\ and \\E\\ and \\T\\ and | here next"
    )


def test_escape_text_names_the_truncation_character_when_msh2_defines_one() -> None:
    d = Delimiters(truncation="#")
    assert escaping_for(d).escape_text("a#b") == "a\\P\\b"


def test_escape_text_with_another_escape_character() -> None:
    d = Delimiters(escape="!")
    assert escaping_for(d).escape_text("x!y\\z|") == "x!E!y\\z!F!"
