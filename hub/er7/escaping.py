"""HL7 escape sequences, both directions, for one message's delimiters (MSH-1/MSH-2).

``Escaping`` is the one home of ER7 escaping: the staging worker decodes wire values to document
values and renders them back (``unescape``/``escape``), the front door writes its own text into
an ACK (``escape_text``).

Document values are plain text, except for the sequences HL7 defines as formatting or
character-set instructions (``\\.br\\``, ``\\H\\``, ``\\Cxxyy\\``, ``\\Zxx\\`` ...): those stay verbatim,
written with the message's escape character, so the renderer can emit them unchanged.

That makes one spelling ambiguous: a literal escape character (wire ``\\E\\``) followed by text
that looks like a kept sequence, e.g. wire ``\\E\\.br\\E\\`` (the text "\\.br\\") versus ``\\.br\\`` (a
line break). The rule, applied identically by both directions so values round-trip exactly:

* rendering scans a value; an escape character starts a kept sequence when the text up to the
  next escape character is a kept body (or the letter ``E``): it is emitted verbatim; any other
  escape character is emitted as ``\\E\\``;
* decoding writes a literal escape character as itself, unless the rule above would take it as
  the start of a kept sequence: then it writes ``\\E\\`` (which the renderer emits verbatim and
  the decoder reads back as one literal escape character). So "\\.br\\" as text is
  ``\\E\\.br\\`` in the document; a plain backslash ("C:\\temp") stays a plain backslash.

Hex escapes ``\\Xhh..\\`` are decoded (bytes in the message's charset); rendering re-escapes only
delimiters (by name) and control characters, LF included (as hex), so ``\\X41\\`` comes back as ``A``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from hub.er7.errors import Er7Error
from hub.er7.header import Delimiters

_KEPT_BODY = re.compile(
    r"(?i:\.(?:br|fi|nf|ce|sp[+-]?[0-9]*|in[+-]?[0-9]*|ti[+-]?[0-9]*|sk[+-]?[0-9]*))"
    r"|[HN]|C[0-9A-Fa-f]{4}|M[0-9A-Fa-f]{4}(?:[0-9A-Fa-f]{2})?|Z[^\r\n]*"
)
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
# Escape bodies a reason may show: codes, not text. A hex body up to 3 bytes (\XE282AC\); an unknown
# one of 1-2 characters (a typo'd code), longer ones are text a stray escape character cut out.
MAX_SHOWN_HEX = 7
MAX_SHOWN_UNKNOWN = 2
# C0 controls and DEL never travel raw in a value: each is written as a hex escape. LF too: a
# receiver that reads LF as a segment separator would split the segment there. Only TAB (legal
# in text, never a separator) stays raw.
_CONTROLS = "".join(chr(c) for c in (*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F))
# Text we write ourselves (an ACK's reason) is one line: every control character run becomes a blank.
_CONTROL_RUN = re.compile(r"[\x00-\x1f\x7f]+")


class Escaping:
    """Escape/unescape for one delimiter set (and the charset used by hex escapes)."""

    def __init__(self, delimiters: Delimiters, codec: str = "utf-8") -> None:
        d = delimiters
        self.delimiters = d
        self.codec = codec
        self.esc = d.escape
        self.named: dict[str, str] = {"F": d.field, "S": d.component, "T": d.subcomponent, "R": d.repetition}
        if d.truncation:
            self.named["P"] = d.truncation
        self._delims = frozenset(self.named.values()) | {d.escape, "\r", "\n"}
        reverse = {ch: f"{d.escape}{name}{d.escape}" for name, ch in self.named.items()}
        table = {ch: f"{d.escape}X{ord(ch):02X}{d.escape}" for ch in _CONTROLS} | reverse
        self._plain_special = re.compile("[" + re.escape("".join(table)) + "]")
        self._special = re.compile("[" + re.escape("".join(table) + d.escape) + "]")
        self._sub: Callable[[re.Match[str]], str] = lambda m: table[m.group()]
        self._text_table = str.maketrans({**reverse, d.escape: f"{d.escape}E{d.escape}"})

    def is_kept(self, body: str) -> bool:
        """True when ``esc + body + esc`` is kept verbatim in a document value."""
        if body == "E":
            return True
        return _KEPT_BODY.fullmatch(body) is not None and not any(c in self._delims for c in body)

    def unescape(self, value: str) -> str:
        """Wire leaf (already split on delimiters) -> document value. Raises Er7Error (no location)."""
        e = self.esc
        parts = value.split(e)
        if len(parts) % 2 == 0:
            raise Er7Error("unterminated escape sequence")
        out: list[str] = []  # built right to left: a literal escape char looks ahead
        run = ""  # text between the current position and the next escape char to the right
        seen_e = False

        def literal_escape() -> None:
            nonlocal run, seen_e
            out.append(e + "E" + e if seen_e and self.is_kept(run) else e)
            run, seen_e = "", True

        for i in range(len(parts) - 1, -1, -1):
            part = parts[i]
            if not i % 2:
                if part:
                    out.append(part)
                    run = part + run
                continue
            if part in self.named:
                ch = self.named[part]
                out.append(ch)
                run = ch + run
            elif part == "E":
                literal_escape()
            elif part[:1] == "X":
                text = self._hex(part)
                pieces = text.split(e)
                for j in range(len(pieces) - 1, -1, -1):
                    if pieces[j]:
                        out.append(pieces[j])
                        run = pieces[j] + run
                    if j:
                        literal_escape()
            elif part and self.is_kept(part):
                out.append(e + part + e)
                run, seen_e = "", True
            elif not part:
                raise Er7Error(f"empty escape sequence {e}{e}")
            elif part == "P":
                raise Er7Error(f"escape {e}P{e} used but MSH-2 defines no truncation character")
            else:
                raise Er7Error(f"unknown escape sequence {self._shown(part, MAX_SHOWN_UNKNOWN)}")
        out.reverse()
        return "".join(out)

    def unescape_keeping(self, value: str) -> tuple[str, bool]:
        """Like ``unescape``, but an unrecognised or unterminated sequence is kept as written.

        Read left to right: an escape character starts a sequence when the text up to the next
        escape character is a known body (a delimiter name, ``E``, ``X`` with hex digits, a kept
        body); any other escape character is a stray, literal character (as if written ``\\E\\``),
        and reading resumes right after it, so ``4\\5 re.`` stays ``4\\5 re.`` and in
        ``a\\b\\H\\`` the second escape character still starts ``\\H\\``. Returns the value and
        whether a stray was kept. A hex escape whose bytes are not valid in the charset still raises.
        """
        try:
            return self.unescape(value), False
        except Er7Error:
            pass
        e, known = self.esc, self._known_body
        out: list[str] = []
        kept = False
        i = 0
        while True:
            j = value.find(e, i)
            if j < 0:
                out.append(value[i:])
                break
            out.append(value[i:j])
            k = value.find(e, j + 1)
            if k >= 0 and known(value[j + 1 : k]):
                out.append(value[j : k + 1])
                i = k + 1
            else:
                out.append(e + "E" + e)
                kept = True
                i = j + 1
        return self.unescape("".join(out)), kept

    def _known_body(self, body: str) -> bool:
        if body in self.named or self.is_kept(body):
            return True
        return body[:1] == "X" and _HEX.fullmatch(body, 1) is not None

    def _hex(self, body: str) -> str:
        digits = body[1:]
        if not _HEX.fullmatch(digits):
            raise Er7Error(f"invalid hex escape {self._shown(body, MAX_SHOWN_HEX)}")
        try:
            return bytes.fromhex(digits).decode(self.codec)
        except UnicodeDecodeError:
            raise Er7Error(
                f"hex escape {self._shown(body, MAX_SHOWN_HEX)} is not valid {self.codec}"
            ) from None

    def _shown(self, body: str, limit: int) -> str:
        """An escape sequence as written when it is short enough to be a code, else its length only."""
        if len(body) <= limit:
            return f"{self.esc}{body}{self.esc}"
        return f"of {len(body)} characters"

    def escape(self, value: str) -> str:
        """Document value -> wire text: delimiters by name, control characters (LF too) as hex."""
        if self._special.search(value) is None:
            return value
        plain, sub = self._plain_special, self._sub
        e = self.esc
        if e not in value:
            return plain.sub(sub, value)
        parts = value.split(e)
        out = [plain.sub(sub, parts[0])]
        i, last = 1, len(parts) - 1
        while i <= last:
            body = parts[i]
            if i < last and self.is_kept(body):
                out.append(e + body + e)
                out.append(plain.sub(sub, parts[i + 1]))
                i += 2
            else:
                out.append(e + "E" + e)
                out.append(plain.sub(sub, body))
                i += 1
        return "".join(out)

    def escape_text(self, value: str) -> str:
        """Plain text we write (no kept sequences) -> wire text: every delimiter by name, the escape
        character as ``E``, each run of control characters (CR, LF, TAB...) as one blank."""
        return _CONTROL_RUN.sub(" ", value).translate(self._text_table)

    def canonical(self, value: str) -> str:
        """The document value that ``value`` reads back as after a render/parse round trip."""
        return self.unescape(self.escape(value))


@lru_cache(maxsize=64)
def escaping_for(delimiters: Delimiters, codec: str = "utf-8") -> Escaping:
    return Escaping(delimiters, codec)
