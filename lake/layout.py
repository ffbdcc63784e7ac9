"""Where things live in the lake bucket (Hive-style partitions for Athena/Glue)."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

RAW, PARSED, ERRORS, BATCHES = "raw", "parsed", "errors", "batches"
FHIR = "fhir"  # a message converted to a FHIR R4 Bundle (message.converted)
# A batch body accepted whole: its bytes (.hl7) and, once split, every message's outcome (.json).
_SUFFIX = {RAW: "hl7", PARSED: "json", ERRORS: "json", BATCHES: "json", FHIR: "json"}


def sanitize(part: str) -> str:
    """A partition value safe in an S3 key: no slashes, no '=', no '..', never empty."""
    cleaned = _UNSAFE.sub("_", part).strip("._")
    return cleaned[:64] or "unknown"


def object_key(
    area: str, *, source: str, message_type: str, received_at: str, message_id: str, suffix: str | None = None
) -> str:
    if area not in _SUFFIX:
        raise ValueError(f"unknown lake area {area!r}")
    date = received_at[:10] if re.fullmatch(r"\d{4}-\d{2}-\d{2}", received_at[:10]) else "unknown"
    return (
        f"{area}/source={sanitize(source)}/type={sanitize(message_type)}/date={date}/"
        f"{sanitize(message_id)}.{suffix or _SUFFIX[area]}"
    )


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"
