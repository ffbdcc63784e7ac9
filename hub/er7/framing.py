"""Wire framing: normalize segment separators, split segments and batches, the dedup digest."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache

from hub.er7.errors import Er7Error, ErrorCode

_LEADING = "\x0b\ufeff\x00\r\n\t "
# 0x1C is MLLP's end block; 0x0B can trail when frames are sloppily concatenated
_TRAILING = "\x1c\x0b\x0c\x00\r\n\t "
_TRAILING_BLANKS = re.compile(r"[ \t]+(?=\r)")
_EMPTY_SEGMENTS = re.compile(r"\r{2,}")
_BATCH_IDS = ("MSH", "BHS", "BTS", "FHS", "FTS")


@lru_cache(maxsize=32)
def _lone_lf(field_sep: str) -> re.Pattern[str]:
    # in a CR-separated message a lone LF separates segments only when a segment starts after it;
    # otherwise it belongs to the value (multi-line OBX-5 text)
    return re.compile(r"\n+(?=[A-Z][A-Z0-9]{2}(?:" + re.escape(field_sep) + r"|\r|\Z)|\r|\Z)")


def normalize(text: str) -> str:
    """Strip framing/padding and make CR the only segment separator (no trailing CR)."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    text = text.lstrip(_LEADING).rstrip(_TRAILING)
    if "\r" in text:
        if "\n" in text:
            text = text.replace("\r\n", "\r")
            if "\n" in text:
                sep = text[3] if text[:3] in ("MSH", "FHS", "BHS") and len(text) > 3 else "|"
                text = _lone_lf(sep).sub("\r", text)
    elif "\n" in text:
        text = text.replace("\n", "\r")
    if " \r" in text or "\t\r" in text:
        text = _TRAILING_BLANKS.sub("", text)
    if "\r\r" in text:
        text = _EMPTY_SEGMENTS.sub("\r", text)
    return text


def split_segments(normalized: str) -> list[str]:
    return normalized.split("\r") if normalized else []


def dedup_digest(normalized: str) -> str:
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


@dataclass
class Batch:
    messages: list[str]
    header_segments: list[str] = field(default_factory=list)
    trailer_segments: list[str] = field(default_factory=list)
    declared_counts: dict[str, int] = field(default_factory=dict)
    problems: list[Er7Error] = field(default_factory=list)


class _BatchReader:
    """One pass over the segments of a body that may be a batch (FHS/BHS ... BTS/FTS)."""

    def __init__(self) -> None:
        self.batch = Batch(messages=[])
        self.current: list[str] | None = None
        self.sep = "|"
        self.in_batch = False  # between BHS and BTS
        self.batch_index = 0  # BHS seen so far
        self.in_batch_messages = 0
        self.fhs_seen = False
        self.fts_seen = False

    def flush(self) -> None:
        if self.current is not None:
            self.batch.messages.append("\r".join(self.current))
            self.current = None

    def count(self, seg: str, index: int, name: str, actual: int, what: str) -> None:
        raw = seg.split(self.sep)[1] if self.sep in seg else ""
        raw = raw.split("^", 1)[0].strip()
        if not raw:
            return
        # a file with several batches has several BTS: the n-th one (n >= 2) is keyed "BTS[n]-1"
        key = name if self.batch_index < 2 or name != "BTS-1" else f"BTS[{self.batch_index}]-1"
        if not raw.isdigit():
            self.batch.problems.append(
                Er7Error(
                    f"{name} is not a count ({len(raw)} characters)",
                    segment_index=index,
                    segment_id=name[:3],
                    field=name,
                )
            )
            return
        self.batch.declared_counts[key] = int(raw)
        if int(raw) != actual:
            self.batch.problems.append(
                Er7Error(
                    f"{name} declares {raw} {what}, found {actual}",
                    segment_index=index,
                    segment_id=name[:3],
                    field=name,
                )
            )

    def feed(self, index: int, seg: str) -> None:
        sid = seg[:3]
        if self.fts_seen:
            raise Er7Error(
                f"segment {sid} after FTS (end of file)",
                segment_index=index,
                segment_id=sid,
                code=ErrorCode.SEGMENT_SEQUENCE_ERROR,
            )
        if sid == "MSH":
            self.flush()
            if len(seg) > 3:
                self.sep = seg[3]
            self.current = [seg]
            self.in_batch_messages += 1
        elif sid == "FHS":
            if index != 1:
                raise Er7Error("FHS must be the first segment", segment_index=index, segment_id=sid)
            self.fhs_seen = True
            self.sep = seg[3] if len(seg) > 3 else self.sep
            self.batch.header_segments.append(seg)
        elif sid == "BHS":
            if self.in_batch:
                raise Er7Error(
                    "a second BHS inside a batch (the previous batch has no BTS)",
                    segment_index=index,
                    segment_id=sid,
                    code=ErrorCode.SEGMENT_SEQUENCE_ERROR,
                )
            self.flush()
            self.sep = seg[3] if len(seg) > 3 else self.sep
            self.in_batch = True
            self.batch_index += 1
            self.in_batch_messages = 0
            self.batch.header_segments.append(seg)
        elif sid == "BTS":
            self.flush()
            if not self.in_batch:
                # BHS is optional in the standard's grammar (python-hl7's sample_batch4): warn, keep
                self.batch.problems.append(Er7Error("BTS without a BHS", segment_index=index, segment_id=sid))
                self.batch_index += 1  # a batch all the same, for FTS-1
            self.in_batch = False
            self.count(seg, index, "BTS-1", self.in_batch_messages, "messages")
            self.in_batch_messages = 0
            self.batch.trailer_segments.append(seg)
        elif sid == "FTS":
            self.flush()
            if not self.fhs_seen:
                # FHS is optional too (python-hl7's sample_file4): warn, keep the messages
                self.batch.problems.append(
                    Er7Error("FTS without an FHS", segment_index=index, segment_id=sid)
                )
            if self.in_batch:
                self.batch.problems.append(
                    Er7Error("batch has no BTS before FTS", segment_index=index, segment_id=sid)
                )
                self.in_batch = False
            self.fts_seen = True
            self.count(seg, index, "FTS-1", self.batch_index, "batches")
            self.batch.trailer_segments.append(seg)
        elif self.current is not None:
            self.current.append(seg)
        elif index == 1:
            raise Er7Error(
                f"first segment is {sid}, expected MSH",
                segment_index=index,
                segment_id=sid,
                code=ErrorCode.SEGMENT_SEQUENCE_ERROR,
            )
        else:
            raise Er7Error(
                f"segment {sid} is outside any message (no MSH before it)",
                segment_index=index,
                segment_id=sid,
                code=ErrorCode.SEGMENT_SEQUENCE_ERROR,
            )


def split_batch(normalized: str) -> Batch:
    """Split a body into messages, removing an FHS/BHS..BTS/FTS envelope if there is one.

    FHS, BHS, BTS and FTS are each optional: a trailer without its header, or a header without its
    trailer, is a problem on the batch (a warning), never a refusal; an envelope holding no message
    is a batch of zero messages."""
    if not normalized:
        raise Er7Error("message is empty")
    if normalized.startswith("MSH") and not any(f"\r{sid}" in normalized for sid in _BATCH_IDS):
        return Batch(messages=[normalized])
    reader = _BatchReader()
    segments = normalized.split("\r")
    for index, seg in enumerate(segments, 1):
        reader.feed(index, seg)
    reader.flush()
    batch = reader.batch
    if reader.in_batch:
        batch.problems.append(Er7Error("batch has no BTS", segment_index=len(segments)))
    if reader.fhs_seen and not reader.fts_seen:
        batch.problems.append(Er7Error("file has no FTS", segment_index=len(segments)))
    # an envelope with no message (BHS...BTS|0) is a valid, empty receipt: zero messages
    return batch
