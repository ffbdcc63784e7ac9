"""HL7 v2 acknowledgements (ACK) built from the received MSH: pure functions, no I/O.

The ACK answers the sender in its own terms: same delimiters and version, sender and receiver
swapped, MSA-2 = the received MSH-10, a new control id. The outcome of the ingest decides the
code (see docs/decisions/0006-mllp-acks.md):

| ingest answer | original mode | enhanced mode (MSH-15 / MSH-16 present) |
|---|---|---|
| 202 accepted, 409 duplicate | AA | CA |
| 400 unreadable message | AE + ERR | CE + ERR |
| 403, 413, 415, 503, anything else | AR + ERR | CR + ERR |

In enhanced mode MSH-15 (accept acknowledgement: AL, NE, ER, SU) decides whether the commit
acknowledgement is sent. When it is not and MSH-16 (application acknowledgement) asks for one,
the application acknowledgement (AA/AE/AR) is sent at once instead: for the lake, "the
application accepted the message" means "it is safely in the hub" (parsing happens later and
is reported by the catalog, not by a deferred ACK; there is no channel back to the sender).
When neither asks, nothing is sent (``None``) — except over HTTP, which always answers.
"""

from __future__ import annotations

import codecs
import dataclasses
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from gateway.outcomes import BatchOutcome, IngestResult
from gateway.problems import Problem
from hub import er7
from hub.er7 import Delimiters, ErrorCode, ErrorCondition, Header, escaping_for
from hub.ids import new_message_id
from hub.tracebacks import exception_location

log = logging.getLogger(__name__)

DEFAULT_VERSION = "2.5"
DEFAULT_VERSION_NUMBER = (2, 5)
# MSH-12 as a version: "2.5", "2.3.1", "2.5.1^..." (components are cut off by the header reader)
_VERSION = re.compile(r"\s*(\d{1,3})(?:\.(\d{1,3}))?(?:\.(\d{1,3}))?")
_SAFE_CONTROL_ID = re.compile(r"[A-Za-z0-9._:\-]{1,199}")
_FIELD = re.compile(r"^([A-Z][A-Z0-9]{2})-(\d+)(?:\[(\d+)\])?(?:\.(\d+))?(?:\.(\d+))?$")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
MAX_USER_MESSAGE = 250
HEAD_BYTES = 16 * 1024  # what is kept of a message too large to take: enough to read its MSH


class Outcome(StrEnum):
    ACCEPTED = "accepted"  # in the hub (or a duplicate of a message that is)
    ERROR = "error"  # the message cannot be read: resending it unchanged will not help
    REJECTED = "rejected"  # refused (source, size, availability): retry later or fix the setup


ORIGINAL_CODES = {Outcome.ACCEPTED: "AA", Outcome.ERROR: "AE", Outcome.REJECTED: "AR"}
COMMIT_CODES = {Outcome.ACCEPTED: "CA", Outcome.ERROR: "CE", Outcome.REJECTED: "CR"}


@dataclass(frozen=True)
class Received:
    """What an ACK needs from the received MSH. Field values are raw (escaped as received)."""

    delimiters: Delimiters = dataclasses.field(default_factory=Delimiters)
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    control_id: str = ""
    trigger: str = ""
    processing_id: str = "P"
    version: str = DEFAULT_VERSION  # MSH-12 as received
    version_number: tuple[int, ...] = DEFAULT_VERSION_NUMBER
    accept_ack_type: str | None = None
    app_ack_type: str | None = None
    charset: str | None = None  # MSH-18 as received
    codec: str = "utf-8"  # how the ACK is encoded: the message's own charset
    segment_ids: tuple[str, ...] = ()
    readable: bool = True  # False: the MSH could not be read; defaults are used

    @property
    def enhanced(self) -> bool:
        return self.readable and bool(self.accept_ack_type or self.app_ack_type)


@dataclass(frozen=True)
class AckError:
    """What the ERR segment says: where (ERR-2), which HL7 code (ERR-3), why (ERR-8)."""

    reason: str
    code: ErrorCode = ErrorCode.APPLICATION_INTERNAL_ERROR  # ERR-3: HL7 table 0357
    application_code: str | None = None  # ERR-5: the front door's own error code (e.g. too_large)
    segment: str | None = None
    segment_index: int | None = None  # 1-based position of the segment in the message
    field: str | None = None  # HL7 notation: MSH-9, PID-3[2].1


@dataclass(frozen=True)
class Ack:
    code: str
    text: str
    data: bytes  # text encoded in the received message's charset


def _version_number(version: str | None) -> tuple[int, ...]:
    """MSH-12 as numbers; anything that is not a short dotted version is read as the default."""
    match = _VERSION.match(version or "")
    if match is None or match.end() != len((version or "").rstrip()):
        return DEFAULT_VERSION_NUMBER
    return tuple(int(part) for part in match.groups() if part is not None)


def _codec(body: bytes, charset: str | None) -> str:
    for name in (charset, None if charset else er7.sniff_charset(body)):
        if name:
            found = er7.codec_for(name)
            if found:
                return found
    return next((c for bom, c in _BOMS if body.startswith(bom)), "utf-8")


def _segment_ids(normalized: str) -> tuple[str, ...]:
    return tuple(seg[:3] for seg in er7.split_segments(normalized))


def from_header(
    header: Header, msh: str, segment_ids: tuple[str, ...] = (), codec: str = "utf-8"
) -> Received:
    """The ACK context of a message whose MSH ``read_header`` could read (``msh``: its raw text)."""
    d = header.delimiters
    fields = msh.split(d.field)  # fields[n - 1] is MSH-n (MSH-1 is the separator itself)

    def raw(n: int) -> str:
        return fields[n - 1] if len(fields) >= n else ""

    def flag(value: str | None) -> str | None:
        return (value.strip().upper() or None) if value else None

    return Received(
        delimiters=d,
        sending_application=raw(3),
        sending_facility=raw(4),
        receiving_application=raw(5),
        receiving_facility=raw(6),
        control_id=raw(10),
        trigger=escaping_for(d).escape_text(header.trigger or ""),
        processing_id=raw(11) or "P",
        version=raw(12) or DEFAULT_VERSION,
        version_number=_version_number(header.version),
        accept_ack_type=flag(header.accept_ack_type),
        app_ack_type=flag(header.app_ack_type),
        charset=raw(18).split(d.repetition, 1)[0] or None,
        codec=codec,
        segment_ids=segment_ids,
    )


def from_text(text: str, codec: str = "utf-8") -> Received:
    """The ACK context of a decoded message; never fails (an unreadable MSH gives defaults)."""
    normalized = er7.normalize(text)
    segment_ids = _segment_ids(normalized)
    try:
        header = er7.read_header(normalized)
    except er7.Er7Error:
        return _unreadable(normalized, segment_ids, codec)
    return from_header(header, normalized.split("\r", 1)[0], segment_ids, codec)


def from_bytes(body: bytes, charset: str | None = None) -> Received:
    """The ACK context of a message as received (``charset``: the transport's, e.g. HTTP's)."""
    codec = _codec(body, charset)
    try:
        text = er7.decode(body, charset)
    except er7.Er7Error:
        # an undecodable byte further down must not cost the sender its MSA-2
        text = body.decode(codec, errors="replace")
    return from_text(text, codec)


def _unreadable(normalized: str, segment_ids: tuple[str, ...], codec: str) -> Received:
    """Default delimiters and version; MSA-2 only when MSH-10 can be located without doubt."""
    control_id = ""
    msh = normalized.split("\r", 1)[0]
    if msh.startswith("MSH") and len(msh) > 3 and not (msh[3].isalnum() or msh[3].isspace()):
        fields = msh.split(msh[3])
        if len(fields) > 9 and _SAFE_CONTROL_ID.fullmatch(fields[9]):
            control_id = fields[9]
    return Received(control_id=control_id, segment_ids=segment_ids, codec=codec, readable=False)


def _condition(value: str | None, outcome: Outcome) -> bool:
    """HL7 table 0155: AL always, NE never, ER on error/reject only, SU on success only."""
    if value == "NE":
        return False
    if value == "ER":
        return outcome is not Outcome.ACCEPTED
    if value == "SU":
        return outcome is Outcome.ACCEPTED
    return True  # AL, or a value outside the table: answer rather than leave the sender waiting


def choose_code(received: Received, outcome: Outcome, *, always: bool = False) -> str | None:
    """The acknowledgement code to send, or None when the sender asked for none."""
    if not received.enhanced:
        return ORIGINAL_CODES[outcome]
    if received.accept_ack_type and _condition(received.accept_ack_type, outcome):
        return COMMIT_CODES[outcome]
    if received.app_ack_type and _condition(received.app_ack_type, outcome):
        return ORIGINAL_CODES[outcome]
    return COMMIT_CODES[outcome] if always else None


_ERROR_PROBLEMS = frozenset({"bad_message", "batch_not_supported"})


def _batch_outcome(result: BatchOutcome) -> tuple[Outcome, AckError | None]:
    """One frame holding several messages gets one ACK: AE when any of them was rejected."""
    rejected = result.rejected
    if not rejected:
        return Outcome.ACCEPTED, None
    first = rejected[0]
    condition = _condition_of(first.answer) if isinstance(first.answer, Problem) else None
    reason = (condition.reason if condition else "") or "unreadable"
    return Outcome.ERROR, AckError(
        reason=(
            f"{len(rejected)} of {len(result.members)} messages of the batch were rejected"
            f" (the others are accepted); first: message {first.index}: {reason}"
        ),
        code=condition.code if condition else ErrorCode.APPLICATION_INTERNAL_ERROR,
        application_code="batch_rejected_messages",
    )


def _condition_of(problem: Problem) -> ErrorCondition:
    """What an unreadable message's ERR says; a problem without a condition reads as an internal error
    (batch_not_supported, which only a body of several messages can cause, as a sequence error)."""
    if problem.condition is not None:
        return dataclasses.replace(problem.condition, reason=problem.condition.reason or problem.message)
    code = (
        ErrorCode.SEGMENT_SEQUENCE_ERROR
        if problem.code == "batch_not_supported"
        else ErrorCode.APPLICATION_INTERNAL_ERROR
    )
    return ErrorCondition(code, problem.message)


def outcome_of(
    problem: Problem | None, result: IngestResult | None = None
) -> tuple[Outcome, AckError | None]:
    """Map the ingest answer (``problem`` None: accepted, with ``result``) to an outcome and ERR."""
    if problem is None and isinstance(result, BatchOutcome):
        return _batch_outcome(result)
    if problem is None or problem.status == 409:
        return Outcome.ACCEPTED, None
    if problem.status == 400 and problem.code in _ERROR_PROBLEMS:
        condition = _condition_of(problem)
        return Outcome.ERROR, AckError(
            reason=condition.reason,
            code=condition.code,
            application_code=problem.code,
            segment=condition.location.segment,
            segment_index=condition.location.segment_index,
            field=condition.location.field,
        )
    return Outcome.REJECTED, AckError(reason=problem.message, application_code=problem.code)


def _location(received: Received, error: AckError) -> list[str]:
    """ERL (segment id, occurrence, field, repetition, component, subcomponent) as strings."""
    segment = error.segment
    parts = _FIELD.match(error.field or "")
    if parts:
        segment = segment or parts.group(1)
    if not segment:
        return []
    occurrence = ""
    if error.segment_index:
        ids = received.segment_ids[: error.segment_index]
        if len(ids) == error.segment_index and ids[-1] == segment:
            occurrence = str(ids.count(segment))  # ERL-2: the segment's occurrence in the message
        else:
            occurrence = str(error.segment_index)
    elif segment == "MSH":
        occurrence = "1"
    if not parts:
        return [segment, occurrence]
    _, field, repetition, component, subcomponent = parts.groups()
    return [segment, occurrence, field, repetition or "1", component or "", subcomponent or ""]


def _trim(values: list[str]) -> list[str]:
    while values and not values[-1]:
        values.pop()
    return values


def build_ack(
    received: Received,
    code: str,
    error: AckError | None = None,
    *,
    control_id: str | None = None,
    now: datetime | None = None,
) -> str:
    """The ACK message text (segments separated by CR, no trailing CR)."""
    d = received.delimiters
    version = received.version_number
    when = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")
    trigger = received.trigger
    if version >= (2, 3, 1):
        message_type = d.component.join(["ACK", trigger, "ACK"])
    else:
        message_type = d.component.join(["ACK", trigger]) if trigger else "ACK"
    msh = [
        "MSH",
        d.encoding_characters,
        received.receiving_application,
        received.receiving_facility,
        received.sending_application,
        received.sending_facility,
        when,
        "",
        message_type,
        control_id or new_message_id()[:20],  # ST(20) up to v2.6; time-ordered, 50 random bits
        received.processing_id,
        received.version,
    ]
    if received.charset:
        msh += [""] * 5 + [received.charset]  # MSH-18: the ACK is written in the message's charset
    msa = ["MSA", code, received.control_id]
    segments = [d.field.join(_trim(msh))]
    if error is None:
        segments.append(d.field.join(_trim(msa)))
        return "\r".join(segments)
    escaping = escaping_for(d)
    reason = escaping.escape_text(error.reason[:MAX_USER_MESSAGE])
    error_code = ErrorCode(error.code)
    code_text = error_code.text
    if version < (2, 5):
        msa.append(reason)  # MSA-3 text message: what senders before v2.4 read
    segments.append(d.field.join(_trim(msa)))
    location = _location(received, error)
    err = [
        "ERR",
        "",  # ERR-1 (ELD) is for versions before 2.5, filled below
        d.component.join(_trim(location)),
        d.component.join([str(error_code.value), code_text, "HL70357"]),
        "E",
        escaping.escape_text(error.application_code or ""),
        "",
        "",
        reason,
    ]
    if version < (2, 5):
        eld_code = d.subcomponent.join([str(error_code.value), code_text, "HL70357"])
        segment, sequence, position = ([*location, "", "", ""])[:3]
        err[1] = d.component.join([segment, sequence, position, eld_code])
    segments.append(d.field.join(_trim(err)))
    return "\r".join(segments)


def acknowledge(
    received: Received,
    problem: Problem | None,
    *,
    result: IngestResult | None = None,
    always: bool = False,
    control_id: str | None = None,
    now: datetime | None = None,
) -> Ack | None:
    """The ACK for an ingest answer (``problem`` None: accepted, ``result`` what ingest returned);
    None when the sender asked for no acknowledgement (never with ``always``)."""
    outcome, error = outcome_of(problem, result)
    code = choose_code(received, outcome, always=always)
    if code is None:
        return None
    try:
        text = build_ack(received, code, error, control_id=control_id, now=now)
    except Exception as exc:  # the message may be stored already: its ACK must not turn into an error
        log.error(
            "ack context unusable, default ACK sent error=%s at=%s",
            type(exc).__name__,
            exception_location(exc),
        )
        received = _skeleton(received)
        text = build_ack(received, code, error, control_id=control_id, now=now)
    return Ack(code=code, text=text, data=_encode(text, received.codec))


def _skeleton(received: Received) -> Received:
    """Default delimiters and version; MSA-2 kept when it is a plain control id."""
    control_id = received.control_id if isinstance(received.control_id, str) else ""
    return Received(control_id=control_id if _SAFE_CONTROL_ID.fullmatch(control_id) else "")


def _encode(text: str, codec: str) -> bytes:
    try:
        return text.encode(codec, errors="replace")
    except (LookupError, UnicodeError, ValueError, TypeError):
        return text.encode("utf-8", errors="replace")
