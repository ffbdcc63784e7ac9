"""MSH reading: delimiters (MSH-1/MSH-2) and the header fields every service needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from hub.er7.charset import UNKNOWN_CHARSET, codec_for, hex_codec
from hub.er7.errors import Er7Error, ErrorCode

if TYPE_CHECKING:  # the wire codec needs no pydantic at run time
    from hub.document import DocumentDelimiters, DocumentHeader

HEADER_IDS = frozenset({"MSH", "FHS", "BHS"})

# Values that become keys and attributes get a hard limit here, where every transport reads the
# header: MSH-10 is part of the dedup keys (DynamoDB: 2 KB per partition key) and MSH-9 an SNS
# message attribute (the whole message: 256 KB). As received, escapes included.
MAX_CONTROL_ID_CHARS = 199  # HL7 v2.7+ allows ST(199); earlier versions 20
MAX_MESSAGE_TYPE_CHARS = 100  # code^trigger^structure: 15 in practice

# MSH-10 empty: accepted (dedup is by content), flagged, acknowledged with MSA-2 empty
MISSING_CONTROL_ID = "missing-control-id"


@dataclass(frozen=True)
class Delimiters:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str | None = None

    @property
    def encoding_characters(self) -> str:
        """MSH-2 as written: component, repetition, escape, subcomponent (+ truncation)."""
        return self.component + self.repetition + self.escape + self.subcomponent + (self.truncation or "")

    def to_dict(self) -> DocumentDelimiters:
        return {
            "field": self.field,
            "component": self.component,
            "repetition": self.repetition,
            "escape": self.escape,
            "subcomponent": self.subcomponent,
            "truncation": self.truncation,
        }

    @classmethod
    def from_msh(cls, segment: str) -> Delimiters:
        """Read MSH-1 and MSH-2 (also of FHS/BHS, which share the layout)."""
        seg_id = segment[:3]
        if seg_id not in HEADER_IDS:
            raise Er7Error(
                f"expected an MSH, FHS or BHS segment, found {segment[:3]!r}", segment_id=seg_id or None
            )
        if len(segment) < 4:
            raise Er7Error(
                "field separator is missing",
                segment_id=seg_id,
                field=f"{seg_id}-1",
                code=ErrorCode.REQUIRED_FIELD_MISSING,
            )
        sep = segment[3]
        if sep.isalnum() or sep.isspace():
            raise Er7Error(
                f"field separator {sep!r} must not be a letter, digit or blank",
                segment_id=seg_id,
                field=f"{seg_id}-1",
            )
        end = segment.find(sep, 4)
        enc = segment[4:] if end < 0 else segment[4:end]
        msh2 = f"{seg_id}-2"
        if not 4 <= len(enc) <= 5:
            raise Er7Error(
                f"encoding characters {enc!r} must be 4 characters (component, repetition, escape,"
                " subcomponent) or 5 with the truncation character",
                segment_id=seg_id,
                field=msh2,
            )
        bad = [c for c in enc if c.isalnum() or c.isspace()]
        if bad:
            reason = (
                f"encoding characters {enc!r} contain {bad[0]!r}; letters, digits and blanks are not allowed"
            )
            raise Er7Error(reason, segment_id=seg_id, field=msh2)
        if len(set(enc)) != len(enc):
            dup = next(c for c in enc if enc.count(c) > 1)
            raise Er7Error(f"encoding characters {enc!r} use {dup!r} twice", segment_id=seg_id, field=msh2)
        return cls(sep, enc[0], enc[1], enc[2], enc[3], enc[4] if len(enc) == 5 else None)


@dataclass(frozen=True)
class Header:
    message_type: str
    control_id: str
    trigger: str | None = None
    message_structure: str | None = None
    version: str | None = None
    sending_application: str | None = None
    sending_facility: str | None = None
    receiving_application: str | None = None
    receiving_facility: str | None = None
    date_time: str | None = None
    charset: str | None = None
    processing_id: str | None = None
    accept_ack_type: str | None = None
    app_ack_type: str | None = None
    delimiters: Delimiters = field(default_factory=Delimiters)
    # what was tolerated in this MSH (missing-control-id, unknown-charset); not part of to_dict()
    flags: tuple[str, ...] = ()

    def to_dict(self) -> DocumentHeader:
        """The header block of the lake document (a fixed contract: exactly these keys)."""
        return {
            "messageType": self.message_type,
            "version": self.version,
            "controlId": self.control_id,
            "sendingApplication": self.sending_application,
            "sendingFacility": self.sending_facility,
            "receivingApplication": self.receiving_application,
            "receivingFacility": self.receiving_facility,
            "dateTime": self.date_time,
            "charset": self.charset,
        }


def read_header(normalized: str) -> Header:
    """Read the MSH (first segment only) of a normalized message."""
    if not normalized:
        raise Er7Error("message is empty")
    end = normalized.find("\r")
    msh = normalized if end < 0 else normalized[:end]
    seg_id = msh[:3]
    if seg_id != "MSH":
        hint = " (a batch envelope: split the batch first)" if seg_id in HEADER_IDS else ""
        raise Er7Error(
            f"first segment is {seg_id}, expected MSH{hint}",
            segment_index=1,
            segment_id=seg_id,
            code=ErrorCode.SEGMENT_SEQUENCE_ERROR,
        )
    try:
        d = (
            _delimiters(msh[:10])
            if len(msh) > 3 and msh.find(msh[3], 4, 10) > 0
            else Delimiters.from_msh(msh)
        )
    except Er7Error as err:
        raise err.locate(segment_index=1) from None
    fields = msh.split(d.field)
    count = len(fields)
    rep_sep, comp_sep, sub_sep, esc = d.repetition, d.component, d.subcomponent, d.escape
    codec = "utf-8"  # for MSH-18 itself; comp() reads it when called, so later values use MSH-18

    def comp(n: int, c: int = 1) -> str | None:
        # MSH-n is fields[n - 1]: MSH-1 is the separator itself, not a split result
        if n > count:
            return None
        value = fields[n - 1]
        if rep_sep in value:
            value = value.split(rep_sep, 1)[0]
        if comp_sep in value:
            parts = value.split(comp_sep, c)
            value = parts[c - 1] if c <= len(parts) else ""
        elif c > 1:
            return None
        if sub_sep in value:
            value = value.split(sub_sep, 1)[0]
        return (_text(value, d, codec) if esc in value else value) or None

    def hd(n: int) -> str | None:
        return comp(n, 1) or comp(n, 2)

    def missing(what: str, fld: str) -> Er7Error:
        return Er7Error(
            f"{what} ({fld}) is missing",
            segment_index=1,
            segment_id="MSH",
            field=fld,
            code=ErrorCode.REQUIRED_FIELD_MISSING,
        )

    charset = comp(18)
    codec = hex_codec(charset)
    if not (fields[8] if len(fields) > 8 else ""):
        raise missing("message type", "MSH-9")
    _check_length(fields, 9, MAX_MESSAGE_TYPE_CHARS)
    _check_length(fields, 10, MAX_CONTROL_ID_CHARS)
    msg_code = comp(9, 1)
    if msg_code is None:
        raise missing("message code", "MSH-9.1")
    trigger = comp(9, 2)
    control_id = _text(fields[9], d, codec) if count > 9 else ""
    flags: tuple[str, ...] = ()
    if not control_id:
        flags += (MISSING_CONTROL_ID,)
    if charset is not None and codec_for(charset) is None:
        flags += (UNKNOWN_CHARSET,)
    return Header(
        message_type=f"{msg_code}^{trigger}" if trigger else msg_code,
        control_id=control_id,
        trigger=trigger,
        message_structure=comp(9, 3),
        version=comp(12),
        sending_application=hd(3),
        sending_facility=hd(4),
        receiving_application=hd(5),
        receiving_facility=hd(6),
        date_time=comp(7),
        charset=charset,
        processing_id=comp(11),
        accept_ack_type=comp(15),
        app_ack_type=comp(16),
        delimiters=d,
        flags=flags,
    )


def _check_length(fields: list[str], n: int, limit: int) -> None:
    size = len(fields[n - 1]) if len(fields) >= n else 0
    if size > limit:
        raise Er7Error(
            f"MSH-{n} is {size} characters long, over the limit of {limit}",
            segment_index=1,
            segment_id="MSH",
            field=f"MSH-{n}",
        )


@lru_cache(maxsize=64)
def _delimiters(msh_start: str) -> Delimiters:
    return Delimiters.from_msh(msh_start)


def _text(value: str, d: Delimiters, codec: str) -> str:
    """Lenient unescape for header values: delimiter escapes and hex; anything else stays verbatim.

    The staging parser validates escapes strictly; the header reader must not reject a message
    for an odd escape in a field it only reports.
    """
    e = d.escape
    if e not in value:
        return value
    parts = value.split(e)
    if len(parts) % 2 == 0:
        return value
    named = {"F": d.field, "S": d.component, "T": d.subcomponent, "R": d.repetition, "E": e}
    if d.truncation:
        named["P"] = d.truncation
    out = [parts[0]]
    for body, text in zip(parts[1::2], parts[2::2], strict=True):
        if body in named:
            out.append(named[body])
        elif body[:1] == "X" and len(body) > 1:
            try:
                raw = bytes.fromhex(body[1:])
            except ValueError:
                out.append(e + body + e)
            else:
                out.append(raw.decode(codec, errors="replace"))
        else:
            out.append(e + body + e)
        out.append(text)
    return "".join(out)
