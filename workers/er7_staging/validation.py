"""Optional, version-aware validation with hl7apy: it reports findings, it never rejects.

The lake keeps every message ``parse_document`` reads. This step only says where a message departs
from the definition of its HL7 version (2.1 to 2.8.2: hl7apy's tables) and never raises:

    validate(text, "2.5") -> [{"severity": "error", "segment": "PID", "field": "PID-5",
                               "code": "missing-field", "message": "PID-5 is required in HL7 2.5"}]

How. hl7apy 1.3.5 parses the message (``VALIDATION_LEVEL.TOLERANT``, segments grouped by the
message structure of MSH-9, checked against ``version``). Its ``Validator.validate`` raises the
first error and lists the others only in a report file, as text naming just the parent element
(``XAD_1.SAD_1``) and quoting field values (``Value <value> not in table ...``). So this module
walks hl7apy's tree itself with hl7apy's references and ``Validator``'s checks (cardinality,
children the definition lacks, HL7 tables, maximum length, datatype) and knows where it is: a
finding names the segment and the position (``PID-11.1.2``), never a value. Fields the version
does not define are found on the text (hl7apy loses their position). hl7apy places segments by
name, not by order: a segment in the wrong place but allowed elsewhere in the structure passes.

Never findings by themselves: Z-segments (and whatever is in them). Never an exception: a version
hl7apy lacks, a segment unknown to the version, a structure it does not define, a message it
cannot read or a crash inside hl7apy each become a finding.

Codes. ``error``: ``missing-segment``, ``missing-group``, ``missing-field``, ``missing-component``,
``too-many-repetitions``, ``unexpected-segment`` (defined in the version, not part of the message
structure there), ``unexpected-element``, ``datatype`` (e.g. components in a primitive field).
``warning``: ``unknown-segment`` (not defined in the version), ``unknown-field``,
``unknown-component``, ``withdrawn-field`` (a withdrawn field or component has a value),
``table-value``, ``max-length``, ``encoding-characters`` (a truncation character below v2.7),
``unknown-structure`` (segments are then checked one by one), ``unsupported-version``,
``too-large``, ``parse-error``, ``validator-error`` (with these four the message, or the rest of
it, was not checked), ``truncated`` (more than ``MAX_FINDINGS``). Errors come first; identical
findings are listed once.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Any

from hl7apy import SUPPORTED_LIBRARIES, load_reference
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import is_base_datatype
from hl7apy.exceptions import ChildNotFound
from hl7apy.parser import get_message_info, parse_message, parse_segment

from hub.er7 import normalize

Finding = dict[str, Any]

MAX_FINDINGS = 50
MAX_MESSAGE_CHARS = 200
MAX_TEXT_CHARS = 256 * 1024  # hl7apy needs up to ~20 ms per KB: larger messages are not validated

ERROR, WARNING = "error", "warning"
_TOLERANT = VALIDATION_LEVEL.TOLERANT
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_STRUCTURE = re.compile(r"[A-Z][A-Z0-9]{2}_[A-Z0-9]{3}")  # MSH-9 as ADT_A04 (a value: shown only so)
_NAME = re.compile(r"[A-Z0-9_]{2,40}")  # names hl7apy gives elements (never a message value)
_VERSION = re.compile(r"[0-9]{1,2}(?:\.[0-9]{1,2}){0,3}")
_POSITION = re.compile(r"_([0-9]{1,3})$")

Location = tuple[str | None, tuple[int, ...]]  # segment id, positions (field, component, subcomponent)


def validate(text: str, version: str | None, *, max_chars: int = MAX_TEXT_CHARS) -> list[Finding]:
    """Findings for one ER7 message (raw or normalized) checked against HL7 ``version``; never raises."""
    findings = _Findings()
    try:
        _validate(text, version, findings, max_chars)
    except Exception as exc:  # a bug in hl7apy or here is a finding, never a failure
        findings.add(WARNING, "validator-error", None, f"validation stopped early ({exc.__class__.__name__})")
    return findings.result()


class _Findings:
    def __init__(self) -> None:
        self.items: list[Finding] = []
        self._seen: set[tuple[str, str, str | None, str | None, str]] = set()

    def add(self, severity: str, code: str, where: Location | None, message: str) -> None:
        segment, positions = where if where is not None else (None, ())
        field = f"{segment}-{'.'.join(map(str, positions))}" if segment and positions else None
        message = message[:MAX_MESSAGE_CHARS]
        key = (severity, code, segment, field, message)
        if key not in self._seen:
            self._seen.add(key)
            self.items.append(
                {"severity": severity, "segment": segment, "field": field, "code": code, "message": message}
            )

    def result(self) -> list[Finding]:
        ordered = sorted(self.items, key=lambda f: f["severity"] != ERROR)  # stable: errors first
        if len(ordered) <= MAX_FINDINGS:
            return ordered
        kept = ordered[: MAX_FINDINGS - 1]
        left = len(ordered) - len(kept)
        kept.append(
            {
                "severity": WARNING,
                "segment": None,
                "field": None,
                "code": "truncated",
                "message": f"{left} more findings not listed",
            }
        )
        return kept


def _validate(text: str, version: str | None, findings: _Findings, max_chars: int) -> None:
    if version is None or version not in SUPPORTED_LIBRARIES:
        if version and _VERSION.fullmatch(version):
            reason = f"HL7 version {version} is not one hl7apy defines"
        else:
            reason = "MSH-12 names no HL7 version hl7apy defines"
        findings.add(
            WARNING, "unsupported-version", ("MSH", (12,)), f"{reason} (2.1 to 2.8.2): not validated"
        )
        return
    normalized = normalize(text)
    if len(normalized) > max_chars:
        findings.add(WARNING, "too-large", None, f"message over {max_chars} characters: not validated")
        return
    segments = normalized.split("\r")
    segments[0] = _hl7apy_msh(segments[0], version, findings)
    try:
        encoding_chars, structure, _ = get_message_info(segments[0])
    except Exception as exc:
        findings.add(
            WARNING, "parse-error", None, f"hl7apy cannot read MSH ({exc.__class__.__name__}): not validated"
        )
        return
    grouped = structure is not None and _message_reference(structure, version) is not None
    if not grouped:
        _unknown_structure(structure, version, findings)
    kept = [segments[0]] + [seg for seg in segments[1:] if _known_segment(seg, version, findings)]
    for segment in kept:
        _unknown_fields(segment, encoding_chars["FIELD"], version, findings)
    if not grouped:
        _validate_segments(kept, version, encoding_chars, findings)
        return
    try:
        message = parse_message("\r".join(kept), validation_level=_TOLERANT, find_groups=True)
    except Exception as exc:
        findings.add(
            WARNING, "parse-error", None, f"hl7apy cannot read the message ({exc.__class__.__name__})"
        )
        return
    _unplaced_segments(kept, message, structure, version, findings)
    _check(message, None, (None, ()), version, findings)


def _hl7apy_msh(msh: str, version: str, findings: _Findings) -> str:
    """MSH as hl7apy should read it: MSH-12.1 is ``version`` (hl7apy takes the version from the text),
    and no fifth (truncation) encoding character below v2.7, which hl7apy refuses."""
    if len(msh) < 5 or msh[:3] != "MSH":
        return msh  # hl7apy's own error, reported as parse-error
    sep = msh[3]
    fields = msh.split(sep)
    encoding = fields[1]
    if len(encoding) == 5 and version < "2.7":
        findings.add(
            WARNING,
            "encoding-characters",
            ("MSH", (2,)),
            f"MSH-2 has a truncation character, defined from HL7 2.7 on (message is {version})",
        )
        fields[1] = encoding = encoding[:4]
    if encoding:
        fields += [""] * (12 - len(fields))
        component = encoding[0]
        fields[11] = component.join([version, *fields[11].split(component)[1:]])
    return sep.join(fields)


def _known_segment(segment: str, version: str, findings: _Findings) -> bool:
    """Z-segments and segments the version does not define are left out of hl7apy's parse."""
    sid = segment[:3]
    if sid.startswith("Z"):
        return False
    if _SEGMENT_ID.fullmatch(sid) is None:
        findings.add(WARNING, "unknown-segment", None, "a segment id is not valid: segment not checked")
        return False
    try:
        load_reference(sid, "Segment", version)
    except ChildNotFound:
        findings.add(WARNING, "unknown-segment", (sid, ()), f"{sid} is not a segment of HL7 {version}")
        return False
    return True


def _unknown_fields(segment: str, sep: str, version: str, findings: _Findings) -> None:
    """Non-empty fields after (or between) the ones the version defines for the segment."""
    sid = segment[:3]
    defined = _defined_fields(sid, version)
    offset = 1 if sid == "MSH" else 0  # MSH-1 is the separator itself
    for index, value in enumerate(segment.split(sep)[1:], 1):
        position = index + offset
        if value and position not in defined:
            findings.add(
                WARNING,
                "unknown-field",
                (sid, (position,)),
                f"{sid}-{position} is not defined in HL7 {version}",
            )


@lru_cache(maxsize=1024)
def _defined_fields(sid: str, version: str) -> frozenset[int]:
    return frozenset(_positions(load_reference(sid, "Segment", version)))


def _positions(ref: Any) -> list[int]:
    """Positions of a reference's children, from hl7apy's names (``PID_3`` -> 3)."""
    matches = (_POSITION.search(child_ref[0]) for child_ref in ref[1])
    return [int(match.group(1)) for match in matches if match]


def _message_reference(structure: str, version: str) -> Any:
    try:
        return load_reference(structure, "Message", version)
    except ChildNotFound:
        return None


def _unknown_structure(structure: str | None, version: str, findings: _Findings) -> None:
    if structure is None:
        reason = "MSH-9 names no message structure"
    elif _STRUCTURE.fullmatch(structure):
        reason = f"message structure {structure} is not defined in HL7 {version}"
    else:
        reason = "MSH-9 names no message structure hl7apy knows"
    findings.add(WARNING, "unknown-structure", ("MSH", (9,)), f"{reason}: segments checked one by one")


def _validate_segments(segments: list[str], version: str, encoding_chars: Any, findings: _Findings) -> None:
    """No structure to place the segments in: each one is checked on its own."""
    for text in segments:
        try:
            segment = parse_segment(text, version, encoding_chars, _TOLERANT)
        except Exception as exc:
            message = f"hl7apy cannot read {text[:3]} ({exc.__class__.__name__})"
            findings.add(WARNING, "parse-error", (text[:3], ()), message)
            continue
        _check(segment, None, (segment.name, ()), version, findings)


def _unplaced_segments(
    segments: list[str], message: Any, structure: str, version: str, findings: _Findings
) -> None:
    """hl7apy silently drops a segment that does not fit the structure where it appears."""
    placed: Counter[str] = Counter()
    _count_segments(message, placed)
    for sid, count in (Counter(seg[:3] for seg in segments) - placed).items():
        times = f" ({count} occurrences)" if count > 1 else ""
        findings.add(
            ERROR,
            "unexpected-segment",
            (sid, ()),
            f"{sid} does not fit where it appears in the {structure} structure of HL7 {version}{times}",
        )


def _count_segments(element: Any, placed: Counter[str]) -> None:
    for child in element.children:
        if child.classname == "Segment":
            placed[child.name] += 1
        elif child.classname == "Group":
            _count_segments(child, placed)


# -- the walk: hl7apy's Validator checks, with a location ------------------------------------------

_KIND = {"Segment": "field", "Field": "component", "Component": "subcomponent"}
_CONTAINERS = ("Message", "Group")


def _check(element: Any, ref: Any, where: Location, version: str, findings: _Findings) -> None:
    if element.is_unknown():
        findings.add(
            ERROR, "unexpected-element", where, f"{_label(element, where)} is not defined in HL7 {version}"
        )
        return
    if element.is_z_element():
        return
    if ref is None:
        try:
            ref = load_reference(element.name, element.classname, version)
        except ChildNotFound:
            findings.add(
                ERROR,
                "unexpected-element",
                where,
                f"{_label(element, where)} is not defined in HL7 {version}",
            )
            return
    if ref[0] in ("sequence", "choice"):
        _check_children(element, ref, where, version, findings)
    else:
        _check_leaf(element, ref, where, version, findings)


def _check_children(element: Any, ref: Any, where: Location, version: str, findings: _Findings) -> None:
    present = {child.name for child in element.children if not child.is_z_element()}
    allowed = {child_ref[0] for child_ref in ref[1]}
    for name in present - allowed:
        _report_extra(element, name, ref, where, version, findings)
    container = element.classname in _CONTAINERS
    for child_name, child_ref, (least, most), tag in ref[1]:
        try:
            children = element.children.get(child_name)
        except ChildNotFound:  # a name missing from hl7apy's tables (skipped, as Validator does)
            continue
        count = len(children)
        child_where = _child_location(where, container, child_name)
        if container:
            child = f"group {child_name}" if tag == "GRP" else child_name
        else:
            child = _describe(child_where)
        if most == 0 and count:
            findings.add(WARNING, "withdrawn-field", child_where, f"{child} is withdrawn in HL7 {version}")
            continue
        if count < least:
            _report_missing(element, tag, child, child_where, version, findings)
        elif most != -1 and count > most:
            findings.add(
                ERROR,
                "too-many-repetitions",
                child_where,
                f"{child} occurs {count} times in {_label(element, where)}, HL7 {version} allows {most}",
            )
        for occurrence in children:
            _check(occurrence, child_ref, child_where, version, findings)


def _check_leaf(element: Any, ref: Any, where: Location, version: str, findings: _Findings) -> None:
    """Table, length and datatype of a field or component; the values are compared, never quoted."""
    table, max_length = ref[4], ref[5]
    value = None
    if table is not None:
        try:
            table_ref = load_reference(table, "Table", version)
        except ChildNotFound:
            pass
        else:
            value = element.to_er7()
            if value not in table_ref[1]:
                findings.add(
                    WARNING, "table-value", where, f"{_describe(where)}: value not in HL7 table {table}"
                )
    if isinstance(max_length, int) and max_length > -1:
        value = element.to_er7() if value is None else value
        if len(value) > max_length:
            findings.add(
                WARNING, "max-length", where, f"{_describe(where)} is longer than {max_length} characters"
            )
    datatype = element.datatype
    if datatype == "varies":
        return
    if datatype is None:  # hl7apy's mark for a primitive value written with separators inside
        parts = "subcomponents" if element.classname == "Component" else "components"
        message = f"{_describe(where)} has {parts} where HL7 {version} defines the primitive type {ref[2]}"
        findings.add(ERROR, "datatype", where, message)
    elif datatype != ref[2]:
        message = f"{_describe(where)} has datatype {datatype}, HL7 {version} defines {ref[2]}"
        findings.add(ERROR, "datatype", where, message)
    if datatype is not None and not is_base_datatype(datatype, version):
        _check(element, load_reference(datatype, "Datatypes_Structs", version), where, version, findings)


def _report_extra(
    element: Any, name: str | None, ref: Any, where: Location, version: str, findings: _Findings
) -> None:
    kind = _KIND.get(element.classname)
    if name is None and kind == "field":
        return  # fields are matched against the version's definition on the text (_unknown_fields)
    if name is None and kind:
        last = max(_positions(ref), default=0)
        message = (
            f"{_describe(where)} has {kind}s after {element.datatype}.{last}, "
            f"the last one HL7 {version} defines"
        )
        findings.add(WARNING, "unknown-component", where, message)
    else:
        shown = name if name and _NAME.fullmatch(name) else "an element"
        message = f"{shown} is not allowed in {_label(element, where)} (HL7 {version})"
        findings.add(ERROR, "unexpected-element", where, message)


def _report_missing(
    element: Any, tag: str, child: str, child_where: Location, version: str, findings: _Findings
) -> None:
    if element.classname in _CONTAINERS:
        code = "missing-segment" if tag == "SEG" else "missing-group"
        findings.add(
            ERROR, code, child_where, f"{child} is required in {_label(element, None)} (HL7 {version})"
        )
    else:
        code = "missing-field" if element.classname == "Segment" else "missing-component"
        findings.add(ERROR, code, child_where, f"{child} is required in HL7 {version}")


def _child_location(where: Location, container: bool, child_name: str) -> Location:
    """Segment children of a message or group start a location; fields and components extend it."""
    if container:
        return (child_name, ()) if len(child_name) == 3 else (None, ())
    segment, positions = where
    match = _POSITION.search(child_name)
    return (segment, (*positions, int(match.group(1)))) if match else where


def _describe(where: Location) -> str:
    segment, positions = where
    if segment and positions:
        return f"{segment}-{'.'.join(map(str, positions))}"
    return segment or "the message"


def _label(element: Any, where: Location | None) -> str:
    """A message or group by its hl7apy name, anything else by its location."""
    if element.classname in _CONTAINERS or where is None:
        name = element.name
        return str(name) if name and _NAME.fullmatch(name) else "the message"
    return _describe(where)
