"""Bytes to text: the charset comes from the HTTP charset parameter, else MSH-18, else UTF-8."""

from __future__ import annotations

import codecs
import re

from hub.er7.errors import Er7Error

# HL7 table 0211 names -> Python codecs. CNS 11643-1992 is deliberately absent: Python has no
# EUC-TW/ISO-2022-CN-EXT codec and guessing Big5 would silently corrupt text.
_HL7_CHARSETS = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "ISO IR100": "iso8859-1",
    "ISO IR192": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UNICODE": "utf-16",
    "UNICODE UTF-16": "utf-16",
    "UNICODE UTF-32": "utf-32",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "BIG-5": "big5",
    "ISO IR87": "iso2022_jp",
    **{f"8859/{n}": f"iso8859-{n}" for n in (*range(1, 10), 15)},
}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_FIRST_MSH = re.compile(rb"(?:\A|[\r\n])[\x0b\x00]*(?:\xef\xbb\xbf)?MSH")
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_NO_CHARSET = "declared charset: none; set MSH-18 or the HTTP charset"
_WIDE = frozenset({"utf-16", "utf-32"})

# Flags of a body read despite its MSH-18 (they travel in the message's envelope and catalog item)
UNKNOWN_CHARSET = "unknown-charset"  # MSH-18 outside table 0211 on a plain-ASCII body
CHARSET_MISMATCH = "charset-mismatch"  # MSH-18 UNICODE (UTF-16/32) on an MSH readable byte by byte
_CHARSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ./:_-]{0,31}")


# Python text codecs that are not character sets: they fail on ordinary text (undefined, idna on an
# empty label) or read escapes as characters. Bytes-to-bytes codecs (base64, hex, zlib, bz2, uu,
# quopri, rot13) are refused by their _is_text_encoding flag.
_NOT_CHARSETS = frozenset(
    {"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape", "charmap"}
)


def codec_for(charset: str) -> str | None:
    """Python codec for an HL7 (MSH-18) or IANA/Python charset name; None when unknown or when the
    label names a Python codec that is not a character set."""
    label = charset.strip()
    name = " ".join(label.upper().replace("_", " ").split())
    if name in _HL7_CHARSETS:
        return _HL7_CHARSETS[name]
    info = _lookup(label)
    if info is None or not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


def _lookup(label: str) -> codecs.CodecInfo | None:
    if not _CHARSET_NAME.fullmatch(label):
        return None
    try:
        return codecs.lookup(label)
    except (LookupError, ValueError):
        return None


def _tolerable_unknown(label: str) -> bool:
    """An MSH-18 value outside table 0211 that a plain-ASCII body may carry (``CAN``, ``x``, ``18``):
    it looks like a code and names nothing the runtime knows. A runtime codec that is not a character
    set (idna, punycode, rot13...) or a label with control characters is not tolerated."""
    return bool(_CHARSET_NAME.fullmatch(label.strip())) and _lookup(label.strip()) is None


def hex_codec(charset: str | None) -> str:
    """Codec for the bytes of ``\\Xhh\\`` escapes: the message charset, UTF-8 when unknown."""
    codec = codec_for(charset) if charset else None
    if codec is None:
        return "utf-8"
    # hex escapes carry bytes in network order; a BOM-less wide codec must say which
    return {"utf-16": "utf-16-be", "utf-32": "utf-32-be"}.get(codec, codec)


def sniff_charset(data: bytes) -> str | None:
    """MSH-18 (first repetition, first component) read from the raw bytes of the first MSH."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            # a wide encoding cannot be scanned bytewise; the head is enough to reach MSH-18
            head = data[: 8192 - 8192 % 4].decode(codec, errors="replace")
            return _msh18(head.split("\r", 1)[0].split("\n", 1)[0])
    match = _FIRST_MSH.search(data)
    if match is None:
        return None
    start = match.end() - 3
    end = len(data)
    for stop in (b"\r", b"\n"):
        pos = data.find(stop, start, end)
        if pos >= 0:
            end = pos
    return _msh18(data[start:end].decode("latin-1"))


def _msh18(msh: str) -> str | None:
    if len(msh) < 8 or not msh.startswith("MSH"):
        return None
    fields = msh.split(msh[3])
    if len(fields) < 18:
        return None
    rep, comp = msh[5], msh[4]
    value = fields[17].split(rep, 1)[0].split(comp, 1)[0].strip()
    return value or None


def _shown(name: str) -> str:
    """A charset name is a code, shown when it looks like one; anything else only by its length."""
    return name if _CHARSET_NAME.fullmatch(name) else f"<{len(name)} chars>"


def decode(data: bytes, declared: str | None = None) -> str:
    """Decode a message body; ``declared`` (the HTTP charset parameter) wins over MSH-18."""
    return decode_flagged(data, declared)[0]


def decode_flagged(data: bytes, declared: str | None = None) -> tuple[str, tuple[str, ...]]:
    """Decode a message body and say what was tolerated: ``unknown-charset`` (an MSH-18 outside table
    0211 on a plain-ASCII body) or ``charset-mismatch`` (MSH-18 names UTF-16/32 but the MSH is readable
    byte by byte, which rules them out: read as UTF-8)."""
    source = "HTTP charset"
    flags: tuple[str, ...] = ()
    name = declared.strip() if declared and declared.strip() else None
    if name is None:
        name = sniff_charset(data)
        source = "MSH-18"
    if name is None:
        codec = next((c for bom, c in _BOMS if data.startswith(bom)), "utf-8")
    else:
        found = codec_for(name)
        if found is None:
            if source != "MSH-18":
                raise Er7Error(f"unknown character set {_shown(name)} (HTTP charset parameter)")
            if not (data.isascii() and _tolerable_unknown(name)):
                raise Er7Error(f"unknown character set {_shown(name)}", segment_id="MSH", field="MSH-18")
            found, flags = "ascii", (UNKNOWN_CHARSET,)
        elif (
            source == "MSH-18"
            and found in _WIDE
            and not any(data.startswith(bom) for bom, _ in _BOMS)
            and _FIRST_MSH.search(data) is not None
        ):
            found, flags = "utf-8", (CHARSET_MISMATCH,)
        codec = found
    start = 0
    if data.startswith(codecs.BOM_UTF8):
        start = 3
    elif data[:1] == b"\x0b" and data[1:4] == codecs.BOM_UTF8:
        start = 4  # MLLP start block before the BOM
    try:
        return (data[start:].decode(codec) if start else data.decode(codec)), flags
    except UnicodeDecodeError as exc:
        offset = exc.start + start
        byte = data[offset]
        what = "UTF-8" if codec == "utf-8" else codec
        hint = f"declared charset: {_shown(name)} ({source})" if name else _NO_CHARSET
        if CHARSET_MISMATCH in flags:
            hint += "; read as UTF-8 since the MSH is readable byte by byte"
        index, seg_id, where = _locate(data, offset)
        raise Er7Error(
            f"byte 0x{byte:02x} at offset {offset} is not valid {what} ({hint})",
            segment_index=index,
            segment_id=seg_id,
            field=where,
        ) from None


def _locate(data: bytes, offset: int) -> tuple[int | None, str | None, str | None]:
    """Segment position/id and field (MSH-4, PID-5.2) of a byte offset, by an ASCII-level scan."""
    lines = [line for line in _LINE_BREAK.split(data[:offset]) if line.strip(b" \t\x0b\x00")]
    if not lines:
        return None, None, None
    prefix = lines[-1].lstrip(b"\x0b\x00")
    if prefix.startswith(codecs.BOM_UTF8):
        prefix = prefix[3:]
    seg_id = prefix[:3].decode("latin-1")
    if len(prefix) < 4 or not re.fullmatch(r"[A-Z][A-Z0-9]{2}", seg_id):
        return len(lines), None, None
    sep, comp = prefix[3:4], b"^"
    first = _FIRST_MSH.search(data)
    if first is not None and len(data) > first.end() + 1:
        sep, comp = data[first.end() : first.end() + 1], data[first.end() + 1 : first.end() + 2]
    count = prefix.count(sep)
    number = count + 1 if seg_id in ("MSH", "FHS", "BHS") else count
    current = prefix.rsplit(sep, 1)[-1]
    where = f"{seg_id}-{number}" + (f".{current.count(comp) + 1}" if comp in current and number > 2 else "")
    return len(lines), seg_id, where
