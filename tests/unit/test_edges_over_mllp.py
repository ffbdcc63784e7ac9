"""Issue 9's reproductions over MLLP: a permanent error is AE (nothing stored), a programming error AR
207 with an error id (nothing stored), an accepted header that only the old ACK builder choked on is
AA (stored once) — the ACK and the storage always agree, and the connection goes on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.test_mllp_server import MSG, Running, exchange, fields, received, shutdown, start

LONG_CONTROL_ID = MSG.replace(b"CTRL-1", b"K" * 2100)
LONG_TYPE = MSG.replace(b"ADT^A01^ADT_A01", b"ADT^" + b"A" * 300_000)
LONG_VERSION = MSG.replace(b"|P|2.5.1", b"|P|" + b"9" * 5000)


def with_charset(label: bytes) -> bytes:
    first, _, rest = MSG.partition(b"\r")
    return first + b"||||||" + label + b"\r" + rest  # MSH-13..17 empty, MSH-18 the label


@pytest.fixture
def mllp() -> Iterator[Running]:
    running = start(max_bytes=1_000_000)  # the 300 KB MSH-9 must reach the header reader
    try:
        yield running
    finally:
        shutdown(running)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (LONG_CONTROL_ID, "10"),
        (LONG_TYPE, "9"),
        (with_charset(b"idna"), "18"),
        (with_charset(b"punycode"), "18"),
        (with_charset(b"undefined"), "18"),
        (with_charset(b"utf\x008"), "18"),
    ],
)
def test_a_permanent_error_is_ae_and_nothing_is_stored(mllp: Running, body: bytes, field: str) -> None:
    with mllp.connect() as sock:
        ack = exchange(sock, body)
        assert fields(ack, "MSA")[1] == "AE"
        assert fields(ack, "ERR")[2].split("^")[:3] == ["MSH", "1", field]
        assert received(mllp.hub) == []
        assert fields(exchange(sock, MSG), "MSA")[1] == "AA"  # the connection goes on


def test_a_version_only_the_old_ack_builder_choked_on_is_aa_and_stored_once(mllp: Running) -> None:
    with mllp.connect() as sock:
        assert fields(exchange(sock, LONG_VERSION), "MSA")[1] == "AA"
        assert fields(exchange(sock, LONG_VERSION), "MSA")[1] == "AA"  # a duplicate: AA, not stored again
    assert len(received(mllp.hub)) == 1


def test_a_programming_error_is_ar_207_with_an_error_id_and_a_retry_works(mllp: Running) -> None:
    mllp.ingest.explode = True
    with mllp.connect() as sock:
        ack = exchange(sock, MSG)
        assert fields(ack, "MSA")[1] == "AR"
        err = fields(ack, "ERR")
        assert err[3].startswith("207^") and err[8]  # ERR-8 carries the error id
        assert received(mllp.hub) == []
        mllp.ingest.explode = False
        assert fields(exchange(sock, MSG), "MSA")[1] == "AA"
    assert len(received(mllp.hub)) == 1
