"""The corpus messages the FHIR mapping is for, parsed the way the staging worker parses them."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from hub.document import ParsedDocument
from hub.er7 import Er7Error, decode, normalize, split_batch
from workers.er7_staging.document import parse_document
from workers.fhir.mapping import MAPPED_TYPES


@cache
def mapped_documents(*roots: Path) -> tuple[tuple[str, ParsedDocument], ...]:
    """(file#index, document) of every message of a mapped type that parses, in file order."""
    out = []
    for root in roots:
        for path in sorted((root / "messages").iterdir()):
            try:
                messages = split_batch(normalize(decode(path.read_bytes()))).messages
            except Er7Error:
                continue
            for index, text in enumerate(messages):
                name = f"{path.name}#{index}"
                try:
                    document = parse_document(text, message_id=name)
                except Er7Error:
                    continue
                if document["header"]["messageType"] in MAPPED_TYPES:
                    out.append((name, document))
    return tuple(out)


def corpus_document(root: Path, file_name: str, index: int = 0) -> ParsedDocument:
    text = split_batch(normalize(decode((root / "messages" / file_name).read_bytes()))).messages[index]
    return parse_document(text, message_id=f"{file_name}#{index}")
