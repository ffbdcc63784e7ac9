"""`hl7lake parse`: the staging worker's parser, offline, on files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hub import er7
from hub.document import ParsedDocument
from workers.er7_staging.document import parse_document


def parse_files(paths: list[Path], charset: str | None = None) -> int:
    """Print one JSON document per good message on stdout; report each bad message on stderr as
    ``FILE: message N: segment S (ID), field F: reason`` and go on with the next one. Exit status 1
    when any message or file failed, 0 otherwise."""
    failures = 0
    for path in paths:
        try:
            text = er7.decode(path.read_bytes(), charset)
            batch = er7.split_batch(er7.normalize(text))
        except er7.Er7Error as err:
            failures += 1
            print(f"{path}: {err}", file=sys.stderr)
            continue
        except OSError as exc:
            failures += 1
            print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
            continue
        single = len(batch.messages) == 1
        for index, message in enumerate(batch.messages, start=1):
            doc_id = path.name if single else f"{path.name}#{index}"
            try:
                doc: ParsedDocument = parse_document(message, message_id=doc_id)
            except er7.Er7Error as err:
                failures += 1
                print(f"{path}: message {index}: {err}", file=sys.stderr)
                continue
            print(json.dumps(doc, ensure_ascii=False))
        for problem in batch.problems:
            print(f"{path}: warning: {problem}", file=sys.stderr)
    return 1 if failures else 0
