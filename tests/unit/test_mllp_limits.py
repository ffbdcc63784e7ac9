"""MLLP connection limits and the answer to a defect: idle or junk-sending connections cannot lock
out a sender, and an unexpected exception is answered AR with an error id, never a silent drop."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

from gateway.ingest import IngestService, MediaType
from gateway.mllp.config import MllpSettings
from gateway.mllp.framing import frame
from tests.unit.test_mllp_server import (
    DEADLINE,
    MSG,
    assert_closed_by_server,
    exchange,
    fields,
    message,
    read_ack,
    shutdown,
    start,
)

SECRET = "DOE^JOHN"


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_junk_outside_frames_does_not_keep_a_connection_open() -> None:
    running = start(idle_timeout=0.5)
    try:
        with running.connect() as junk:
            started = time.monotonic()
            junk.settimeout(DEADLINE)
            closed = False
            while time.monotonic() - started < DEADLINE and not closed:
                try:
                    junk.sendall(b"no frame here\r")
                    time.sleep(0.05)
                except OSError:
                    closed = True
            if not closed:
                assert_closed_by_server(junk)
            assert time.monotonic() - started < DEADLINE - 0.5
    finally:
        shutdown(running)


def test_at_the_limit_the_longest_idle_connection_makes_room(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.mllp.server")
    running = start(max_connections=2)
    try:
        with running.connect() as oldest, running.connect() as recent:
            assert fields(exchange(oldest, message("OLD")), "MSA")[1] == "AA"
            time.sleep(0.05)
            assert fields(exchange(recent, message("RECENT")), "MSA")[1] == "AA"
            with running.connect() as newcomer:
                assert fields(exchange(newcomer, message("NEW")), "MSA")[1] == "AA"
                assert_closed_by_server(oldest)
                assert fields(exchange(recent, message("STILL")), "MSA")[1] == "AA"
        assert "closed the longest idle" in caplog.text
    finally:
        shutdown(running)


def test_64_idle_connections_do_not_lock_out_a_sender() -> None:
    running = start()
    try:
        idle = [running.connect() for _ in range(64)]
        wait_for(lambda: running.server.active_connections == 64, "64 connections open")
        with running.connect() as sender:
            assert fields(exchange(sender, MSG), "MSA")[1] == "AA"
        for sock in idle:
            sock.close()
    finally:
        shutdown(running)


def test_the_per_address_limit_closes_that_address_longest_idle_connection() -> None:
    running = start(max_connections=10, max_connections_per_address=1)
    try:
        with running.connect() as first:
            assert fields(exchange(first, message("FIRST")), "MSA")[1] == "AA"
            with running.connect() as second:
                assert fields(exchange(second, message("SECOND")), "MSA")[1] == "AA"
                assert_closed_by_server(first)
    finally:
        shutdown(running)


def test_the_per_address_limit_is_a_setting_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MllpSettings().max_connections_per_address == 0
    monkeypatch.setenv("HL7LAKE_MLLP_MAX_CONNECTIONS_PER_ADDRESS", "4")
    assert MllpSettings().max_connections_per_address == 4


class Defect:
    def __init__(self, inner: IngestService) -> None:
        self.inner = inner

    def ingest(self, body: bytes, media: MediaType, source: str) -> dict[str, object]:
        raise KeyError(f"a defect quoting {SECRET}")


def test_an_unexpected_error_is_ar_207_with_an_error_id_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.mllp.server")
    running = start()
    running.server._ingest = Defect(running.ingest.inner)
    try:
        with running.connect() as sock:
            answer = exchange(sock, MSG)
            assert fields(answer, "MSA")[1:3] == ["AR", "CTRL-1"]
            err = fields(answer, "ERR")
            assert err[3] == "207^Application internal error^HL70357"
            assert err[5] == "internal"
            error_id = err[8].split("error id ", 1)[1].split(")", 1)[0]
            assert fields(exchange(sock, message("NEXT")), "MSA")[1] == "AR"  # the connection goes on
    finally:
        shutdown(running)
    line = next(r.getMessage() for r in caplog.records if error_id in r.getMessage())
    assert "error=KeyError" in line and "at=" in line
    assert SECRET not in caplog.text


def test_an_ack_builder_failure_still_answers_ar(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway import ack

    real = ack.acknowledge

    def fragile(received: ack.Received, *args: object, **kwargs: object) -> ack.Ack | None:
        if received.readable:
            raise ValueError("the builder choked on this MSH")
        return real(received, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ack, "acknowledge", fragile)
    running = start()
    try:
        with running.connect() as sock:
            sock.sendall(frame(MSG))
            answer = read_ack(sock)
        assert fields(answer, "MSA")[1] == "AR"
        assert fields(answer, "ERR")[3].startswith("207^")
    finally:
        shutdown(running)
