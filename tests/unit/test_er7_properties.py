"""Property tests: generated documents survive render -> (CR | LF | CRLF) -> parse unchanged.

The expected values come from an oracle written here, independently of ``escaping.py``: a leaf is
generated as tokens that each say what they mean (text, a delimiter, a literal escape character, a
formatting instruction), and ``reference`` derives both the document value and the wire text from
the standard's rules. The implementation's own ``canonical()`` is never the expectation, so a
mirror-image bug in escape and unescape cannot pass.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.er7 import Delimiters, normalize
from hub.er7.escaping import escaping_for
from workers.er7_staging.document import parse_document, render_document

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# printable ASCII that HL7 allows as a delimiter (not a letter, digit or blank)
DELIMITER_POOL = "|^~\\&#!@$%*+-/:;<=>?_`{}.,'\"[]()"
TEXT = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz0123456789 .-"
SEGMENT_ID = st.from_regex(r"[A-Z][A-Z0-9]{2}", fullmatch=True).filter(
    lambda sid: sid not in {"MSH", "FHS", "BHS", "BTS", "FTS"}
)


@st.composite
def delimiters(draw: st.DrawFn) -> Delimiters:
    count = draw(st.sampled_from([5, 6]))
    chars = draw(st.lists(st.sampled_from(DELIMITER_POOL), min_size=count, max_size=count, unique=True))
    return Delimiters(chars[0], chars[1], chars[2], chars[3], chars[4], chars[5] if count == 6 else None)


# -- the oracle ---------------------------------------------------------------------------------

# HL7 v2 formatting and character-set commands (chapter 2, "escape sequences"), written out here
FORMATTING = re.compile(
    r"\.(br|fi|nf|ce|(sp|in|ti|sk)[+-]?\d*)|H|N|C[0-9A-F]{4}|M[0-9A-F]{4}([0-9A-F]{2})?|Z.*"
)
NAMES = {"field": "F", "component": "S", "subcomponent": "T", "repetition": "R", "truncation": "P"}
WORDS = ["H", "N", ".br", "E", "Zq", "C2842", ".sp2"]  # text that reads as a command after an escape
COMMANDS = [".br", "H", "N", "Zxy", "C2842", ".sp2", ".in-4"]
Token = tuple[str, str]  # ("text", s) | ("delimiter", name) | ("escape", "") | ("command", body)


def hex_escape(e: str, ch: str) -> str:
    return e + "X" + ch.encode().hex().upper() + e


def wire_char(d: Delimiters, c: str) -> str:
    """One character of text on the wire: a delimiter by name, a control character (TAB aside) in hex."""
    for name, code in NAMES.items():
        if getattr(d, name) == c:
            return d.escape + code + d.escape
    return hex_escape(d.escape, c) if ord(c) < 0x20 and c != "\t" else c


def reference(d: Delimiters, tokens: list[Token]) -> tuple[str, str]:
    """(document value, wire text) of a leaf, straight from the rules, token by token.

    Wire: text as ``wire_char`` writes it; a delimiter by its
    name; a literal escape character ``\\E\\``; a command verbatim. Document: text and delimiters
    as themselves, a command verbatim, a literal escape character as itself, unless the document
    text after it, up to the next escape character, would read as a command (or ``E``): then
    ``\\E\\``.
    """
    e = d.escape
    delimiter_chars = {getattr(d, name) for name in NAMES if getattr(d, name)} | {"\r", "\n"}
    wire, docs = [], []
    for kind, payload in tokens:
        if kind == "text":
            wire.append("".join(wire_char(d, c) for c in payload))
            docs.append(payload)
        elif kind == "delimiter":
            wire.append(e + NAMES[payload] + e)
            docs.append(getattr(d, payload))
        elif kind == "command":
            wire.append(e + payload + e)
            docs.append(e + payload + e)
        else:
            wire.append(e + "E" + e)
            docs.append(e)
    for i, (kind, _) in enumerate(tokens):
        if kind != "escape":
            continue
        following = ""
        for j in range(i + 1, len(tokens)):
            if tokens[j][0] in ("escape", "command"):
                break  # both start with the escape character in the document
            following += docs[j]
        else:
            continue  # no escape character after it: a plain one
        if following == "E" or (FORMATTING.fullmatch(following) and not set(following) & delimiter_chars):
            docs[i] = e + "E" + e
    return "".join(docs), "".join(wire)


def tokens(d: Delimiters) -> st.SearchStrategy[list[Token]]:
    names = [name for name in NAMES if getattr(d, name)]
    e = d.escape
    delimiter_chars = {getattr(d, name) for name in names} | {e}
    commands = [c for c in COMMANDS if not set(c) & delimiter_chars]  # ".br" is no command if "." is one
    words = [w for w in WORDS if e not in w]  # the escape character as text is the "escape" token
    token = st.one_of(
        st.tuples(st.just("text"), st.text(TEXT.replace(e, ""), min_size=1, max_size=6)),
        st.tuples(st.just("text"), st.sampled_from(words)),
        st.tuples(  # never the escape character: as text it is the "escape" token
            st.just("text"),
            st.sampled_from(
                [t for t in ["\n", "\r", "\t", " ", "\x1c", "\x00", "é", "日本", '""'] if e not in t]
            ),
        ),
        st.tuples(st.just("delimiter"), st.sampled_from(names)),
        st.tuples(st.just("escape"), st.just("")),
        st.tuples(st.just("command"), st.sampled_from(commands)),
    )
    return st.lists(token, min_size=1, max_size=5)


def leaves(d: Delimiters) -> st.SearchStrategy[str]:
    """Document values, as the oracle writes them."""
    return tokens(d).map(lambda ts: reference(d, ts)[0])


@st.composite
def segment_fields(draw: st.DrawFn, d: Delimiters, first: int) -> dict[str, str]:
    """A segment's flat fields, built from a random tree in message order."""
    fields: dict[str, str] = {}
    leaf = leaves(d)

    def put(key: str) -> None:
        value = draw(leaf)
        if value:
            fields[key] = value

    for fno in range(first, first + draw(st.integers(0, 7))):
        if draw(st.booleans()):
            continue  # empty field
        for r in range(1, draw(st.integers(1, 3)) + 1):
            base = str(fno) if r == 1 else f"{fno}[{r}]"
            shape = draw(st.sampled_from(["empty", "plain", "components"]))
            if shape == "plain":
                put(base)
            elif shape == "components":
                for c in range(1, draw(st.integers(1, 4)) + 1):
                    kind = draw(st.sampled_from(["empty", "plain", "subcomponents"]))
                    if kind == "plain":
                        put(f"{base}.{c}")
                    elif kind == "subcomponents":
                        for s in range(1, draw(st.integers(1, 3)) + 1):
                            if draw(st.booleans()):
                                put(f"{base}.{c}.{s}")
    return fields


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    d = draw(delimiters())
    msh = {"1": d.field, "2": d.encoding_characters}
    msh |= {k: v for k, v in draw(segment_fields(d, 3)).items() if int(k.split(".")[0].split("[")[0]) < 9}
    msh |= {"9.1": "ADT", "9.2": "A01", "10": draw(leaves(d)), "12": "2.9"}
    segments = [{"id": "MSH", "fields": msh}]
    for _ in range(draw(st.integers(0, 5))):
        segments.append({"id": draw(SEGMENT_ID), "fields": draw(segment_fields(d, 1))})
    return {"id": None, "delimiters": d.to_dict(), "segments": segments}


@SETTINGS
@given(doc=documents(), separator=st.sampled_from(["\r", "\n", "\r\n"]))
def test_render_then_parse_gives_the_document_back(doc: dict[str, Any], separator: str) -> None:
    text = render_document(doc)
    assert normalize(text) == text  # the renderer never writes anything normalize would change
    assert "\n" not in text  # an LF in a value is written \X0A\: LF-separated wire reads the same
    wire = text.replace("\r", separator) + separator
    parsed = parse_document(wire)
    assert parsed["delimiters"] == doc["delimiters"]
    assert parsed["segments"] == doc["segments"]
    assert render_document(parsed) == text


@SETTINGS
@given(data=st.data())
def test_escape_and_unescape_agree_with_the_oracle(data: st.DataObject) -> None:
    d = data.draw(delimiters())
    esc = escaping_for(d)
    value, wire = reference(d, data.draw(tokens(d)))
    assert esc.escape(value) == wire
    assert esc.unescape(wire) == value
    assert esc.canonical(value) == value
    assert not set(wire) & {d.field, d.component, d.repetition, d.subcomponent, "\r", "\n"}


GOLDEN = [  # (document value, wire), default delimiters |^~\&
    ("a|b^c&d~e", "a\\F\\b\\S\\c\\T\\d\\R\\e"),
    ("C:\\temp", "C:\\E\\temp"),
    ("line\nnext", "line\\X0A\\next"),
    ("cr\rnul\x00fs\x1c tab\t", "cr\\X0D\\nul\\X00\\fs\\X1C\\ tab\t"),
    ("a\\.br\\b", "a\\.br\\b"),  # a formatting instruction, verbatim
    ("a\\E\\.br\\b", "a\\E\\.br\\E\\b"),  # the text "\.br\"
    ("\\E\\H\\", "\\E\\H\\E\\"),  # the text "\H\"
    ("\\H\\bold\\N\\", "\\H\\bold\\N\\"),
    ("x\\y", "x\\E\\y"),
]


@pytest.mark.parametrize(("value", "wire"), GOLDEN)
def test_golden_escapes(value: str, wire: str) -> None:
    esc = escaping_for(Delimiters())
    assert esc.escape(value) == wire
    assert esc.unescape(wire) == value


@SETTINGS
@given(
    lines=st.lists(st.text("ABC|^~&xyz \t", min_size=0, max_size=12), min_size=1, max_size=6),
    separator=st.sampled_from(["\r", "\n", "\r\n"]),
    framing=st.booleans(),
)
def test_normalize_is_idempotent(lines: list[str], separator: str, framing: bool) -> None:
    raw = separator.join(["MSH|^~\\&|A", *lines])
    if framing:
        raw = f"\x0b\ufeff{raw}\x1c\r"
    once = normalize(raw)
    assert normalize(once) == once
    assert not once.endswith(("\r", " ", "\t"))
    assert "\r\r" not in once
