"""The parsed document's published JSON Schema (docs/schemas/) is the type in hub/document.py, and
every document the parser makes from the corpora conforms to it."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from hub.document import parsed_document_adapter, parsed_document_schema_text
from hub.er7 import Er7Error
from tests.conftest import ROOT
from tests.unit import test_er7_corpus as er7_corpus
from tests.unit import test_peer_corpus as peer_corpus
from workers.er7_staging.document import parse_document

SCHEMA_FILE = ROOT / "docs" / "schemas" / "parsed-document.schema.json"
SAMPLE = (
    "MSH|^~\\&|LAB|HOSP|LAKE|HOSP|20260102030405||ADT^A01|MSG1|P|2.5.1\r"
    'PID|1||MRN1~SSN9^^^SSA&1.2&ISO||DOE^JOHN||19700101|M|||""\r'
    "ZXY|1|a&b"
)


@cache
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def problems(doc: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(doc)]


def test_committed_schema_is_generated_from_the_type() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == parsed_document_schema_text(), (
        "docs/schemas/parsed-document.schema.json is out of date: run `make schema`"
    )


def test_a_parsed_document_conforms() -> None:
    doc = parse_document(SAMPLE, message_id="01J")
    assert problems(doc) == []
    assert parsed_document_adapter().validate_python(doc, strict=True) == doc


def _sample() -> dict[str, Any]:
    return copy.deepcopy(dict(parse_document(SAMPLE, message_id="01J")))


def _with_unknown_top_level_key(doc: dict[str, Any]) -> None:
    doc["raw"] = "MSH|..."


def _with_unknown_header_key(doc: dict[str, Any]) -> None:
    doc["header"]["trigger"] = "A01"


def _without_a_header_key(doc: dict[str, Any]) -> None:
    del doc["header"]["controlId"]


def _with_unknown_delimiter_key(doc: dict[str, Any]) -> None:
    doc["delimiters"]["segment"] = "\r"


def _with_a_two_character_delimiter(doc: dict[str, Any]) -> None:
    doc["delimiters"]["component"] = "^^"


def _with_unknown_segment_key(doc: dict[str, Any]) -> None:
    doc["segments"][1]["index"] = 2


def _with_a_lowercase_segment_id(doc: dict[str, Any]) -> None:
    doc["segments"][1]["id"] = "pid"


def _with_nested_fields(doc: dict[str, Any]) -> None:
    doc["segments"][1]["fields"]["5"] = ["DOE", "JOHN"]


def _with_a_malformed_field_key(doc: dict[str, Any]) -> None:
    doc["segments"][1]["fields"]["PID-5.1"] = "DOE"


def _with_a_first_repetition_index(doc: dict[str, Any]) -> None:
    doc["segments"][1]["fields"]["3[1]"] = "MRN1"


def _with_an_empty_leaf(doc: dict[str, Any]) -> None:
    doc["segments"][1]["fields"]["9"] = ""


def _with_a_numeric_id(doc: dict[str, Any]) -> None:
    doc["id"] = 1


def _without_segments(doc: dict[str, Any]) -> None:
    doc["segments"] = []


def _without_delimiters(doc: dict[str, Any]) -> None:
    del doc["delimiters"]


BREAKAGES = [
    _with_unknown_top_level_key,
    _with_unknown_header_key,
    _without_a_header_key,
    _with_unknown_delimiter_key,
    _with_a_two_character_delimiter,
    _with_unknown_segment_key,
    _with_a_lowercase_segment_id,
    _with_nested_fields,
    _with_a_malformed_field_key,
    _with_a_first_repetition_index,
    _with_an_empty_leaf,
    _with_a_numeric_id,
    _without_segments,
    _without_delimiters,
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda f: f.__name__.lstrip("_"))
def test_a_document_with_a_wrong_key_or_type_is_refused(breakage: Any) -> None:
    doc = _sample()
    breakage(doc)
    assert problems(doc) != []
    with pytest.raises(ValidationError):
        parsed_document_adapter().validate_python(doc, strict=True)


def _public_corpus_documents() -> list[tuple[str, Any]]:
    docs = []
    for prefix in er7_corpus.all_files():
        try:
            messages = er7_corpus.batch(prefix).messages
        except Er7Error:
            continue  # refused whole: nothing of it reaches the lake
        for index, text in enumerate(messages):
            try:
                docs.append((f"{prefix}#{index}", parse_document(text, message_id=f"{prefix}#{index}")))
            except Er7Error:
                continue
    return docs


def test_every_public_corpus_document_conforms(corpus_dir: Path) -> None:
    docs = _public_corpus_documents()
    assert len(docs) >= 40
    failures = {name: found for name, doc in docs if (found := problems(doc))}
    assert failures == {}
    for _, doc in docs:
        parsed_document_adapter().validate_python(doc, strict=True)


def test_every_peer_corpus_document_conforms(peer_corpus_dir: Path) -> None:
    outcomes = peer_corpus._outcomes(peer_corpus_dir)
    docs = [(f"{m.file}#{m.index}", m.doc) for o in outcomes for m in o.messages if m.doc is not None]
    assert len(docs) >= 200
    failures = {name: found for name, doc in docs if (found := problems(doc))}
    assert failures == {}
    for _, doc in docs:
        parsed_document_adapter().validate_python(doc, strict=True)
