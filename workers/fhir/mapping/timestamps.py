"""HL7 DT/DTM/TS → FHIR date/dateTime/instant, keeping the precision the sender gave.

FHIR requires a time zone whenever a time is given. A value without its own offset takes the MSH-7
offset (HL7: the sender's time zone is the default); with no offset anywhere, only the date is kept.
"""

from __future__ import annotations

import datetime as dt


class TimestampError(ValueError):
    pass


def _digits(text: str, what: str) -> str:
    if not text.isdigit() or not text.isascii():
        raise TimestampError(f"{what} {text!r} is not an HL7 date/time")
    return text


def split_offset(value: str) -> tuple[str, str | None]:
    """'20240101120000+0200' -> ('20240101120000', '+02:00'); no offset -> (value, None)."""
    for sign in ("+", "-"):
        head, found, tail = value.partition(sign)
        if found:
            if len(tail) != 4 or not tail.isdigit() or int(tail[:2]) > 14 or int(tail[2:]) > 59:
                raise TimestampError(f"time zone {sign}{tail!r} is not +/-HHMM")
            return head, f"{sign}{tail[:2]}:{tail[2:]}"
    if value.endswith("Z"):
        return value[:-1], "+00:00"
    return value, None


def message_offset(msh7: str | None) -> str | None:
    if not msh7:
        return None
    try:
        return split_offset(msh7.strip())[1]
    except TimestampError:
        return None


def to_date(value: str) -> str:
    """DT (or the date part of a DTM) → FHIR date: YYYY, YYYY-MM or YYYY-MM-DD."""
    text, _ = split_offset(value.strip())
    text = _digits(text[:8], "date") if len(text) >= 8 else _digits(text, "date")
    if len(text) not in (4, 6, 8):
        raise TimestampError(f"date {value!r} is not YYYY[MM[DD]]")
    year, month, day = int(text[:4]), int(text[4:6] or 1), int(text[6:8] or 1)
    try:
        dt.date(year, month, day)
    except ValueError as err:
        raise TimestampError(f"date {value!r}: {err}") from None
    if year < 1:
        raise TimestampError(f"date {value!r}: year 0")
    return "-".join(p for p in (text[:4], text[4:6], text[6:8]) if p)


def to_datetime(value: str, default_offset: str | None) -> str:
    """DTM/TS → FHIR dateTime (or a date when there is no time, or no time zone for it)."""
    text, offset = split_offset(value.strip())
    main, dot, fraction = text.partition(".")
    date = to_date(main[:8])
    clock = main[8:]
    if not clock:
        return date
    _digits(clock, "time")
    if len(clock) not in (2, 4, 6):
        raise TimestampError(f"time in {value!r} is not HH[MM[SS]]")
    hh, mm, ss = clock[:2], clock[2:4] or "00", clock[4:6] or "00"
    if int(hh) > 23 or int(mm) > 59 or int(ss) > 59:
        raise TimestampError(f"time in {value!r} is out of range")
    if dot:
        if len(main) != 14 or not fraction:
            raise TimestampError(f"fraction in {value!r} needs seconds before it")
        ss += "." + _digits(fraction, "fraction of a second")
    offset = offset or default_offset
    if offset is None or len(date) != 10:
        return date
    return f"{date}T{hh}:{mm}:{ss}{offset}"


def to_instant(value: str, default_offset: str | None) -> str | None:
    """A dateTime precise to the second with a time zone, or None when the value is less precise."""
    out = to_datetime(value, default_offset)
    return out if len(out) >= 25 else None


def to_time(value: str) -> str:
    """TM → FHIR time hh:mm:ss."""
    text, _ = split_offset(value.strip())
    main, dot, fraction = text.partition(".")
    _digits(main, "time")
    if len(main) not in (2, 4, 6):
        raise TimestampError(f"time {value!r} is not HH[MM[SS]]")
    hh, mm, ss = main[:2], main[2:4] or "00", main[4:6] or "00"
    if int(hh) > 23 or int(mm) > 59 or int(ss) > 59:
        raise TimestampError(f"time {value!r} is out of range")
    return f"{hh}:{mm}:{ss}" + (f".{_digits(fraction, 'fraction')}" if dot and fraction else "")
