"""`hl7lake send --mllp` against an in-process MLLP listener with a memory ingest."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from hl7lake.send import run_send
from hl7lake.send_mllp import MllpSender, ack_fields, parse_address
from tests.unit.test_mllp_server import Running, message, received, shutdown, start


@pytest.fixture
def mllp() -> Iterator[Running]:
    running = start()
    try:
        yield running
    finally:
        shutdown(running)


def test_send_over_mllp_counts_acks(mllp: Running, tmp_path: Path) -> None:
    for index in range(3):
        (tmp_path / f"m{index}.hl7").write_bytes(message(f"CTRL-{index}"))
    (tmp_path / "bad.hl7").write_bytes(b"MSH|^~\\&|A|B|C|D|20260101||||P|2.5\rPID|1\r")  # no MSH-9
    out, err = io.StringIO(), io.StringIO()
    sender = MllpSender(f"127.0.0.1:{mllp.port()}", timeout=5.0)
    code = run_send([str(tmp_path)], sender, concurrency=2, out=out, err=err, tty=False)
    assert code == 1
    assert sorted(e.control_id for e in received(mllp.hub)) == ["CTRL-0", "CTRL-1", "CTRL-2"]
    table = out.getvalue()
    assert "accepted   3" in table and "rejected   1" in table
    assert "AE: " in table and "MSH-9" in table and "bad.hl7" in table


def test_nothing_listening_is_a_rejection_with_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "m.hl7"
    path.write_bytes(message("C"))
    outcome = MllpSender("127.0.0.1:9", timeout=1.0).send(path)
    assert outcome.counts == {"rejected": 1} and outcome.reasons[0].startswith("no ACK: ")


def test_ack_fields_prefer_err_user_message() -> None:
    ack = b"MSH|^~\\&|L|H|S|F|20260101||ACK|1|P|2.5\rMSA|AE|C1|short\rERR||MSH^1^9|101^x|E||||long text\r"
    assert ack_fields(ack) == ("AE", "long text")
    assert ack_fields(b"MSH|^~\\&|L\rMSA|AA|C1\r") == ("AA", "")


def test_parse_address() -> None:
    assert parse_address("example.org:2575") == ("example.org", 2575)
    with pytest.raises(ValueError):
        parse_address("2575")
