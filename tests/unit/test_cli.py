"""The `hl7lake` command's offline parts: `parse` and the argument errors users meet first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hl7lake.cli import main


def test_parse_prints_one_document_per_message(corpus_dir: Path, capsys) -> None:
    files = [
        corpus_dir / "messages" / "050-ADT_A01-2.5.hl7",
        corpus_dir / "messages" / "064-BATCH_ADT_A01-2.4.hl7",
    ]
    assert main(["parse", *map(str, files)]) == 0
    lines = capsys.readouterr().out.splitlines()
    docs = [json.loads(line) for line in lines]
    assert len(docs) == 3  # one message + a batch of two
    assert docs[0]["header"]["messageType"] == "ADT^A01"
    assert next(s for s in docs[0]["segments"] if s["id"] == "PID")["fields"]["5.1"] == "SURNAME"


def test_parse_reports_a_precise_error_and_fails(corpus_dir: Path, capsys) -> None:
    good = corpus_dir / "messages" / "050-ADT_A01-2.5.hl7"
    bad = corpus_dir / "messages" / "052-BAD_NOMSH-nover.hl7"
    assert main(["parse", str(bad), str(good), "/nonexistent.hl7"]) == 1
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1  # the good file is still parsed
    errors = captured.err.splitlines()
    assert any("052-BAD_NOMSH" in e and "PID" in e and "MSH" in e for e in errors)
    assert any("/nonexistent.hl7: cannot read" in e for e in errors)


def test_charset_override(corpus_dir: Path, capsys) -> None:
    cp1252 = corpus_dir / "messages" / "048-NOTYPE-nover.hl7"
    assert main(["parse", str(cp1252)]) == 1
    assert "0x96" in capsys.readouterr().err


def test_unknown_worker_is_a_clear_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hl7lake", "worker", "nope"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "er7-staging" in result.stderr
