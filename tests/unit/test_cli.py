"""The `hl7lake` command's offline parts: `parse` and the argument errors users meet first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


def _msh(control_id: str, encoding: str = "^~\\&", message_type: str = "ADT^A01") -> str:
    return f"MSH|{encoding}|APP|FAC|LAKE|HOSP|20240101120000||{message_type}|{control_id}|P|2.5"


def test_parse_reports_every_bad_message_of_a_batch_and_prints_every_good_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "batch.hl7"
    messages = [
        f"{_msh('good1')}\rPID|1||111^^^H||DOE^JOHN",
        f"{_msh('bad2', encoding='^~&')}\rPID|1||222",  # MSH-2 without an escape character
        f"{_msh('good3')}\rPID|1||333^^^H||ROE^JANE",
        f"{_msh('bad4', message_type='')}\rPID|1||444",  # no MSH-9
        f"{_msh('good5')}\rPID|1||555",
    ]
    batch.write_text("\r".join(["BHS|^~\\&|APP", *messages, "BTS|5"]) + "\r", encoding="utf-8")
    other = tmp_path / "other.hl7"
    other.write_text(f"{_msh('single')}\rPID|1||666\r", encoding="utf-8")

    assert main(["parse", str(batch), str(other)]) == 1
    captured = capsys.readouterr()
    docs = [json.loads(line) for line in captured.out.splitlines()]
    assert [d["header"]["controlId"] for d in docs] == ["good1", "good3", "good5", "single"]
    assert [d["id"] for d in docs] == ["batch.hl7#1", "batch.hl7#3", "batch.hl7#5", "other.hl7"]
    errors = [e for e in captured.err.splitlines() if "warning" not in e]
    assert len(errors) == 2
    assert errors[0].startswith(f"{batch}: message 2: segment 1 (MSH), field MSH-2: ")
    assert errors[1].startswith(f"{batch}: message 4: segment 1 (MSH), field MSH-9: ")
    assert "4 characters" in errors[0] and "missing" in errors[1]


def test_parse_exits_0_when_every_message_of_a_batch_is_good(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "batch.hl7"
    batch.write_text("\r".join(["BHS|^~\\&|APP", _msh("a"), _msh("b"), "BTS|2"]) + "\r", encoding="utf-8")
    assert main(["parse", str(batch)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 2
    assert captured.err == ""


def test_parse_goes_on_after_a_file_it_cannot_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unsplittable = tmp_path / "pid-first.hl7"
    unsplittable.write_text("PID|1||1\r", encoding="utf-8")
    good = tmp_path / "good.hl7"
    good.write_text(_msh("ok") + "\r", encoding="utf-8")
    assert main(["parse", str(unsplittable), str(good)]) == 1
    captured = capsys.readouterr()
    assert [json.loads(line)["header"]["controlId"] for line in captured.out.splitlines()] == ["ok"]
    assert captured.err.startswith(f"{unsplittable}: segment 1 (PID)")
