"""Wire-level HL7 v2 ER7 codec shared by every service: framing, MSH header, charset, batches, escaping."""

from hub.er7.charset import (
    CHARSET_MISMATCH,
    UNKNOWN_CHARSET,
    codec_for,
    decode,
    decode_flagged,
    hex_codec,
    sniff_charset,
)
from hub.er7.errors import Er7Error, ErrorCode, ErrorCondition, Location
from hub.er7.escaping import Escaping, escaping_for
from hub.er7.framing import Batch, dedup_digest, normalize, split_batch, split_segments
from hub.er7.header import HEADER_IDS, MISSING_CONTROL_ID, Delimiters, Header, read_header

__all__ = [
    "CHARSET_MISMATCH",
    "HEADER_IDS",
    "MISSING_CONTROL_ID",
    "UNKNOWN_CHARSET",
    "Batch",
    "Delimiters",
    "Er7Error",
    "ErrorCode",
    "ErrorCondition",
    "Escaping",
    "Header",
    "Location",
    "codec_for",
    "decode",
    "decode_flagged",
    "dedup_digest",
    "escaping_for",
    "hex_codec",
    "normalize",
    "read_header",
    "sniff_charset",
    "split_batch",
    "split_segments",
]
