"""ER7 message <-> lake document.

A document (``hub.document.ParsedDocument``, the lake's contract) is ``{"id", "header",
"delimiters", "segments": [{"id": "PID", "fields": {...}}]}`` where ``fields`` maps HL7
positions to the non-empty leaves, in message order: ``F`` (a field or repetition without
components), ``F.C`` (a component), ``F.C.S`` (a subcomponent); a repetition after the first is
``F[R]``. A repetition written with subcomponents but no
component separator (``a&b``) is component 1: ``F.1.1``, ``F.1.2``.

An unrecognised or unterminated escape sequence (a stray escape character, ``4\\5 re.``) is kept
as written, never refused: the value holds the escape character as text, and the caller's
``findings`` list gets ``{"code": "escape-kept", "segment", "segmentIndex", "field"}`` (positions,
never the value). A hex escape whose bytes are invalid in the message's charset is still refused.

Rendering drops trailing empty positions, except where a separator is what tells ``F`` from
``F.1`` (``x^`` is ``F.1`` = "x", ``x&`` is ``F.1.1`` = "x"): it writes that one separator back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from hub.document import ParsedDocument, Segment
from hub.er7 import HEADER_IDS, Delimiters, Er7Error, hex_codec, normalize, read_header
from hub.er7.escaping import Escaping, escaping_for

Fields = dict[str, str]
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_KEY = re.compile(r"([1-9][0-9]*)(?:\[([1-9][0-9]*)\])?(?:\.([1-9][0-9]*)(?:\.([1-9][0-9]*))?)?")
_TRAILING_BLANKS = re.compile(r"[ \t]+$")
_BATCH_SEGMENTS = HEADER_IDS | {"BTS", "FTS"}
_valid_ids: set[str] = set()
ESCAPE_KEPT = "escape-kept"
MAX_ESCAPE_FINDINGS = 20  # per message; one more finding says how many were left out
Finding = dict[str, Any]
_collector: ContextVar[list[Finding] | None] = ContextVar("er7_findings", default=None)


@contextmanager
def collecting_findings() -> Iterator[list[Finding]]:
    """Findings of every parse in this block that is given no ``findings`` list of its own."""
    findings: list[Finding] = []
    token = _collector.set(findings)
    try:
        yield findings
    finally:
        _collector.reset(token)


class _Labels(dict[int, str]):
    """Interned key parts: ``_NUM[3] == "3"``, ``_DOT[3] == ".3"`` (built on first use)."""

    def __init__(self, fmt: str) -> None:
        super().__init__()
        self.fmt = fmt

    def __missing__(self, n: int) -> str:
        label = self[n] = self.fmt.format(n)
        return label


_NUM = _Labels("{}")
_DOT = _Labels(".{}")


def parse_document(
    text: str, *, message_id: str | None = None, findings: list[Finding] | None = None
) -> ParsedDocument:
    """Parse one ER7 message (raw or already normalized) into the lake document.

    What was accepted leniently (a kept stray escape) is appended to ``findings`` when given.
    """
    normalized = normalize(text)
    header = read_header(normalized)
    esc = escaping_for(header.delimiters, hex_codec(header.charset))
    return {
        "id": message_id,
        "header": header.to_dict(),
        "delimiters": header.delimiters.to_dict(),
        "segments": _parse_segments(normalized, esc, findings),
    }


def parse_segments(text: str, *, findings: list[Finding] | None = None) -> tuple[Delimiters, list[Segment]]:
    """Segments of a message whose MSH lacks what the lake header needs (MSH-9, MSH-10).

    Same rules as ``parse_document`` for the segments; only MSH-1/MSH-2 must be valid.
    """
    normalized = normalize(text)
    if not normalized:
        raise Er7Error("message is empty")
    first = normalized.split("\r", 1)[0]
    if first[:3] != "MSH":
        raise Er7Error(f"first segment is {first[:3]}, expected MSH", segment_index=1, segment_id=first[:3])
    try:
        d = Delimiters.from_msh(first)
    except Er7Error as err:
        raise err.locate(segment_index=1) from None
    fields = first.split(d.field)
    charset = fields[17].split(d.repetition, 1)[0].split(d.component, 1)[0] if len(fields) > 17 else None
    return d, _parse_segments(normalized, escaping_for(d, hex_codec(charset)), findings)


def _check_segment_id(sid: str, seg: str, sep: str, index: int) -> None:
    if _SEGMENT_ID.fullmatch(sid) is None:
        # only the segment id's three positions: a longer line start may be a value cut by a line break
        raise Er7Error(f"{seg.split(sep, 1)[0][:3]!r} is not a valid segment id", segment_index=index)
    _valid_ids.add(sid)


def _parse_segments(normalized: str, esc: Escaping, findings: list[Finding] | None = None) -> list[Segment]:
    d = esc.delimiters
    sep, rep_sep, comp_sep, sub_sep, e = d.field, d.repetition, d.component, d.subcomponent, d.escape
    segments: list[Segment] = []
    kept: list[Finding] = []
    for index, seg in enumerate(normalized.split("\r"), 1):
        sid = seg[:3]
        if sid not in _valid_ids:
            _check_segment_id(sid, seg, sep, index)
        parts = seg.split(sep)
        if len(parts[0]) != 3:
            raise Er7Error(
                f"expected the field separator {sep!r} after the segment id, found {seg[3]!r}",
                segment_index=index,
                segment_id=sid,
            )
        fields: Fields = {}
        if index == 1:
            fields["1"] = sep
            if len(parts) > 1:
                fields["2"] = parts[1]
            first, values = 3, parts[2:]
        elif sid in _BATCH_SEGMENTS:
            raise Er7Error(
                f"{sid} inside a message: a batch or several messages must be split first",
                segment_index=index,
                segment_id=sid,
            )
        else:
            first, values = 1, parts[1:]
        for fno, value in enumerate(values, first):
            if not value:
                continue
            if rep_sep in value:
                reps: list[str] | tuple[str] = value.split(rep_sep)
            elif comp_sep in value or sub_sep in value:
                reps = (value,)
            else:
                fields[_NUM[fno]] = value
                continue
            fkey = _NUM[fno]
            for r, rep in enumerate(reps, 1):
                if not rep:
                    continue
                base = fkey if r == 1 else f"{fkey}[{r}]"
                if comp_sep in rep:
                    for c, comp in enumerate(rep.split(comp_sep), 1):
                        if not comp:
                            continue
                        if sub_sep in comp:
                            base_c = base + _DOT[c]
                            for s, sub in enumerate(comp.split(sub_sep), 1):
                                if sub:
                                    fields[base_c + _DOT[s]] = sub
                        else:
                            fields[base + _DOT[c]] = comp
                elif sub_sep in rep:
                    base_c = base + ".1"
                    for s, sub in enumerate(rep.split(sub_sep), 1):
                        if sub:
                            fields[base_c + _DOT[s]] = sub
                else:
                    fields[base] = rep
        if e in seg:
            _unescape_fields(fields, esc, sid, index, kept)
        segments.append({"id": sid, "fields": fields})
    if kept and findings is None:
        findings = _collector.get()
    if kept and findings is not None:
        findings.extend(kept[:MAX_ESCAPE_FINDINGS])
        if len(kept) > MAX_ESCAPE_FINDINGS:
            more = len(kept) - MAX_ESCAPE_FINDINGS
            findings.append(
                {"code": ESCAPE_KEPT, "segment": None, "segmentIndex": None, "field": None, "more": more}
            )
    return segments


def _unescape_fields(fields: Fields, esc: Escaping, sid: str, index: int, kept: list[Finding]) -> None:
    e = esc.esc
    for key, value in fields.items():
        if e in value and not (index == 1 and key == "2"):
            try:
                fields[key] = esc.unescape(value)
            except Er7Error:
                try:
                    fields[key], stray = esc.unescape_keeping(value)
                except Er7Error as err:
                    raise err.locate(segment_index=index, segment_id=sid, field=f"{sid}-{key}") from None
                if stray:
                    field = f"{sid}-{key}"
                    kept.append({"code": ESCAPE_KEPT, "segment": sid, "segmentIndex": index, "field": field})


# -- rendering ---------------------------------------------------------------------------------


def render_document(doc: ParsedDocument) -> str:
    """Rebuild ER7 (CR separators, no trailing CR) from a lake document."""
    d = Delimiters(**doc["delimiters"])
    if len(d.field) != 1 or Delimiters.from_msh(f"MSH{d.field}{d.encoding_characters}") != d:
        raise Er7Error("invalid delimiters (field separator or encoding characters)")
    esc = escaping_for(d)
    segments = doc["segments"]
    text = "\r".join(_render_segment(seg, i, esc, safe=False) for i, seg in enumerate(segments, 1))
    suspect = " \r" in text or "\t\r" in text or text[-1:] in (" ", "\t")
    if suspect and normalize(text) != text:
        # a trailing blank would be trimmed: write those as hex escapes
        text = "\r".join(_render_segment(seg, i, esc, safe=True) for i, seg in enumerate(segments, 1))
    return text


def _render_segment(seg: Segment, index: int, esc: Escaping, *, safe: bool) -> str:
    """Walk the leaves in position order, writing the separators that lead to each one."""
    sid = seg["id"]
    if not isinstance(sid, str) or _SEGMENT_ID.fullmatch(sid) is None:
        raise Er7Error(f"{sid!r} is not a valid segment id", segment_index=index)
    d = esc.delimiters
    fsep, rsep, csep, ssep = d.field, d.repetition, d.component, d.subcomponent
    escape = esc.escape
    header = sid in HEADER_IDS
    out = [sid, fsep, d.encoding_characters] if header else [sid]
    cf = 2 if header else 0  # cursor: field, repetition, component, subcomponent
    cr = cc = cs = 1
    lc = ls = 0  # component/subcomponent level of the previous leaf (0: not that deep)
    for f, r, c, s, key, value in _leaves(sid, index, seg["fields"], header):
        cv, sv = c or 1, s or 1
        if f != cf or r != cr:
            # leaving a repetition: "x^" / "x&" keep the one separator that says "component"
            if ls == 1:
                out.append(ssep)
            elif lc == 1 and not ls:
                out.append(csep)
            if f != cf:
                out.append(fsep * (f - cf))
                cr = 1
            if r != cr:
                out.append(rsep * (r - cr))
            cf, cr, cc, cs = f, r, 1, 1
        elif not c or not lc or (cv == cc and (not s or not ls or s == ls)):
            raise _conflict(sid, index, key)
        elif cv != cc:
            if ls == 1:
                out.append(ssep)
            cs = 1
        if cv != cc:
            out.append(csep * (cv - cc))
            cc = cv
        if sv != cs:
            out.append(ssep * (sv - cs))
            cs = sv
        out.append(escape(value))
        lc, ls = c, s
    if ls == 1:
        out.append(ssep)
    elif lc == 1 and not ls:
        out.append(csep)
    line = "".join(out)
    if safe and line[-1:] in (" ", "\t"):
        line = _TRAILING_BLANKS.sub(
            lambda m: "".join(f"{d.escape}X{ord(ch):02X}{d.escape}" for ch in m.group()), line
        )
    return line


def _leaves(sid: str, index: int, fields: Fields, header: bool) -> list[tuple[int, int, int, int, str, str]]:
    """(field, repetition, component, subcomponent, key, value), sorted by position."""
    leaves = []
    ordered = True
    previous = (0, 0, 0, 0)
    for key, value in fields.items():
        position = _position(key)
        if position is None or not isinstance(value, str):
            raise Er7Error(
                f"invalid field key {key!r} or value",
                segment_index=index,
                segment_id=sid,
                field=f"{sid}-{key}",
            )
        if header and position[0] <= 2:
            continue  # MSH-1/MSH-2 are written from the document's delimiters
        if position <= previous:
            ordered = False
        previous = position
        leaves.append((*position, key, value))
    if not ordered:
        leaves.sort(key=lambda leaf: leaf[:4])
    return leaves


@lru_cache(maxsize=8192)
def _position(key: str) -> tuple[int, int, int, int] | None:
    """Key to position: 3[2].1 -> (3, 2, 1, 0), 3.1 -> (3, 1, 1, 0); None if malformed."""
    match = _KEY.fullmatch(key)
    if match is None:
        return None
    f, r, c, s = match.groups()
    return int(f), int(r) if r else 1, int(c) if c else 0, int(s) if s else 0


def _conflict(sid: str, index: int, key: str) -> Er7Error:
    return Er7Error(
        f"key {key!r} conflicts with another key", segment_index=index, segment_id=sid, field=f"{sid}-{key}"
    )
