"""`--since` for `hl7lake ls`: a duration back from now (90s, 15m, 1h, 2d, 1w) or an ISO 8601 time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def since_timestamp(value: str, now: datetime | None = None) -> str:
    """The ISO 8601 UTC time the API's `since` takes; ValueError when `value` is neither form."""
    match = _DURATION.fullmatch(value.strip())
    if match:
        moment = (now or datetime.now(UTC)) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    else:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
