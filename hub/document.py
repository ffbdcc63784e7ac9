"""The parsed document: the lake's contract for one HL7 v2 message (decision 0004).

The staging worker builds it, the lake stores it as JSON, the read API and ``hl7lake parse`` hand it
out. The shape is closed: a key not defined here is a contract change, not an extension, so every
level forbids unknown keys. ``docs/schemas/parsed-document.schema.json`` is generated from these types
(``make schema``) for consumers in other languages.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints, TypeAdapter, with_config
from typing_extensions import TypedDict

# F, F.C, F.C.S (1-based); a repetition after the first is F[R] with R >= 2, e.g. 3[2].1
FIELD_KEY_PATTERN = r"^[1-9][0-9]*(\[([2-9]|[1-9][0-9]+)\])?(\.[1-9][0-9]*(\.[1-9][0-9]*)?)?$"
SEGMENT_ID_PATTERN = r"^[A-Z][A-Z0-9]{2}$"

FieldKey = Annotated[str, StringConstraints(pattern=FIELD_KEY_PATTERN)]
# only the non-empty leaves are kept; HL7's explicit null is the two-character string '""'
FieldValue = Annotated[str, StringConstraints(min_length=1)]
Delimiter = Annotated[str, StringConstraints(min_length=1, max_length=1)]


@with_config(ConfigDict(extra="forbid", title="Header"))
class DocumentHeader(TypedDict):
    """What every reader filters on, read from the MSH."""

    messageType: str  # MSH-9.1^MSH-9.2
    version: str | None  # MSH-12
    controlId: str  # MSH-10, empty when the sender left it out
    sendingApplication: str | None  # HD-1 (HD-2 when HD-1 is empty)
    sendingFacility: str | None
    receivingApplication: str | None
    receivingFacility: str | None
    dateTime: str | None  # MSH-7 as written
    charset: str | None  # MSH-18


@with_config(ConfigDict(extra="forbid", title="Delimiters"))
class DocumentDelimiters(TypedDict):
    """MSH-1 and MSH-2: what ``render_document`` writes the message back with."""

    field: Delimiter
    component: Delimiter
    repetition: Delimiter
    escape: Delimiter
    subcomponent: Delimiter
    truncation: Delimiter | None  # v2.7+ fifth encoding character


# a key outside the pattern is refused in the JSON Schema too (patternProperties alone would let it by)
Fields = Annotated[dict[FieldKey, FieldValue], Field(json_schema_extra={"additionalProperties": False})]


@with_config(ConfigDict(extra="forbid", title="Segment"))
class Segment(TypedDict):
    """One segment: its id and its non-empty leaves keyed by HL7 position (MSH: 1 and 2 included)."""

    id: Annotated[str, StringConstraints(pattern=SEGMENT_ID_PATTERN)]
    fields: Fields


@with_config(ConfigDict(extra="forbid", title="ParsedDocument"))
class ParsedDocument(TypedDict):
    """One message: ``segments`` in the message's order, the MSH first."""

    id: str | None  # the message id in the lake; the file name in ``hl7lake parse``
    header: DocumentHeader
    delimiters: DocumentDelimiters
    segments: Annotated[list[Segment], Field(min_length=1)]


@cache
def parsed_document_adapter() -> TypeAdapter[ParsedDocument]:
    """Validates a document against the type (built on first use: the parser never needs it)."""
    return TypeAdapter(ParsedDocument)


def parsed_document_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``ParsedDocument``, as published in docs/schemas/."""
    schema = parsed_document_adapter().json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def parsed_document_schema_text() -> str:
    """The schema file's exact text (stable key order, trailing newline) so a diff shows real changes."""
    return json.dumps(parsed_document_schema(), indent=2, ensure_ascii=False) + "\n"
