"""Process-wide logging: one line per event, ids and sizes only (never message bodies).

Log lines quote values a sender chose (MSH-9, MSH-10, source, charset, ids). Every formatter here
escapes them centrally, so no call site has to: control characters (CR, LF, ESC and the rest of C0/C1),
Unicode line separators and bidi/invisible format characters become visible escapes (`\\x1b`,
`\\u2028`); each argument is cut to MAX_VALUE_CHARS, the message to MAX_MESSAGE_CHARS, and every line
to MAX_LINE_BYTES (a traceback keeps its line breaks; each of its lines is bounded too).

`HL7LAKE_LOG_FORMAT=json` writes one JSON object per line: `ts level service logger event message`,
then the `key=value` pairs of the message as fields (`id`, `type`, `source` ...), `exc_type`/`exc`
for an exception. Plain text (the default) is what `make up` shows.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import re
from collections.abc import Mapping
from typing import Any, get_args

from hl7lake.settings import LogFormat, RootSettings

MAX_VALUE_CHARS = 200
MAX_MESSAGE_CHARS = 2000
MAX_LINE_BYTES = 4096
MAX_EVENT_CHARS = 80
_RESERVED = ("ts", "level", "service", "logger", "event", "message", "exc_type", "exc")

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]")
_FIELD = re.compile(r"(?:^|(?<=\s))([A-Za-z_][\w.-]*)=([^\s=]*)(?=\s|$)")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(text: str) -> str:
    """Control and invisible format characters as visible escapes; everything else unchanged."""
    return _UNSAFE.sub(_visible, text)


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…(+{len(text) - limit} chars)"


def safe_value(value: Any) -> Any:
    """A log argument made safe; numbers and None pass unchanged so `%d`/`%.1f` keep working."""
    if value is None or isinstance(value, int | float):
        return value
    return escape(cut(value if isinstance(value, str) else str(value), MAX_VALUE_CHARS))


def safe_args(args: Any) -> Any:
    if isinstance(args, Mapping):
        return {key: safe_value(value) for key, value in args.items()}
    if isinstance(args, tuple):
        return tuple(safe_value(value) for value in args)
    return args


def safe_message(record: logging.LogRecord) -> str:
    """The record's message with every argument (and then the whole text) escaped and bounded."""
    safe = copy.copy(record)
    safe.args = safe_args(record.args)
    return escape(cut(safe.getMessage(), MAX_MESSAGE_CHARS))


def bound_line(line: str, limit: int = MAX_LINE_BYTES) -> str:
    data = line.encode("utf-8", "backslashreplace")
    if len(data) <= limit:
        return line
    return data[: limit - 16].decode("utf-8", "ignore") + "…(line cut)"


def _bound_lines(text: str) -> str:
    return "\n".join(bound_line(escape(line)) for line in text.split("\n"))


class TextFormatter(logging.Formatter):
    """`2026-01-01 12:00:00,000 INFO [gateway] gateway.ingest: accepted id=… type=…`, made safe."""

    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)s [{escape(service)}] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        safe = copy.copy(record)
        safe.msg, safe.args = safe_message(record), None
        return _bound_lines(super().format(safe))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `key=value` pairs of the message become fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        message = safe_message(record)
        event, fields = parse_fields(message)
        entry: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "event": event,
            **fields,
            "message": message,
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exc"] = _tail(escape(self.formatException(record.exc_info)), MAX_LINE_BYTES // 2)
        return _fit(entry)


def parse_fields(message: str) -> tuple[str, dict[str, str]]:
    """`accepted id=1 type=ADT^A01` → ("accepted", {"id": "1", "type": "ADT^A01"}); reserved names are kept
    in the message only."""
    first = _FIELD.search(message)
    event = cut((message[: first.start()] if first else message).strip(), MAX_EVENT_CHARS)
    fields = {key: value for key, value in _FIELD.findall(message) if key not in _RESERVED}
    return event, fields


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]


def _fit(entry: dict[str, Any]) -> str:
    """The JSON line within MAX_LINE_BYTES: drop the traceback, then the fields, then cut the message."""
    line = json.dumps(entry)
    for name in ("exc", *[key for key in entry if key not in _RESERVED]):
        if len(line) <= MAX_LINE_BYTES:
            return line
        entry.pop(name, None)
        line = json.dumps(entry)
    for _ in range(4):  # JSON escaping can make the cut message longer than planned: cut again
        if len(line) <= MAX_LINE_BYTES:
            return line
        overflow = len(line) - MAX_LINE_BYTES
        entry["message"] = cut(entry["message"], max(0, len(entry["message"]) - overflow - 32))
        line = json.dumps(entry)
    return bound_line(line)


def formatter(service: str, log_format: str | None = None) -> logging.Formatter:
    """`HL7LAKE_LOG_FORMAT`: `text` (default) or `json`."""
    chosen = log_format.strip().lower() if log_format else RootSettings().log_format
    if chosen not in get_args(LogFormat):
        raise ValueError(f"HL7LAKE_LOG_FORMAT must be 'text' or 'json', not {chosen!r}")
    return JsonFormatter(service) if chosen == "json" else TextFormatter(service)


def configure(service: str) -> None:
    settings = RootSettings()
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(service, settings.log_format))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
    for noisy in ("botocore", "boto3", "urllib3", "httpx", "werkzeug", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
