"""MLLP for `hl7lake send`: each file one framed message on its own connection, answered by an ACK.

An MLLP duplicate is acknowledged AA like a new message, so over MLLP it counts as accepted."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from gateway.mllp.framing import END_BLOCK, FrameDecoder, frame
from hl7lake.outcomes import FileOutcome, single

ACCEPTED_CODES = ("AA", "CA")
MAX_ACK_BYTES = 1 << 20


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{address!r} is not HOST:PORT")
    return host, int(port)


def ack_fields(ack: bytes) -> tuple[str, str]:
    """MSA-1 (the code) and a reason: ERR-8 (user message) or MSA-3 (text message) when present."""
    text = ack.decode("utf-8", errors="replace")
    segments = [s for s in text.replace("\n", "\r").split("\r") if s]
    separator = text[3] if text.startswith("MSH") and len(text) > 3 else "|"
    by_id = {s[:3]: s.split(separator) for s in reversed(segments)}
    msa = by_id.get("MSA", [])
    err = by_id.get("ERR", [])
    reason = (err[8] if len(err) > 8 and err[8] else "") or (msa[3] if len(msa) > 3 else "")
    return (msa[1] if len(msa) > 1 else ""), reason


class MllpSender:
    def __init__(self, address: str, timeout: float = 30.0) -> None:
        self._host, self._port = parse_address(address)
        self._timeout = timeout

    def send(self, path: Path) -> FileOutcome:
        body = path.read_bytes()
        started = time.monotonic()
        try:
            with socket.create_connection((self._host, self._port), timeout=self._timeout) as sock:
                sock.sendall(frame(body))
                ack = self._read_ack(sock, started)
        except OSError as exc:
            return single(str(path), "rejected", f"no ACK: {exc.__class__.__name__}")
        code, reason = ack_fields(ack)
        if code in ACCEPTED_CODES:
            return single(str(path), "accepted")
        return single(str(path), "rejected", f"{code or 'no MSA'}: {reason}".rstrip(": "))

    def _read_ack(self, sock: socket.socket, started: float) -> bytes:
        decoder = FrameDecoder(MAX_ACK_BYTES)
        while True:
            sock.settimeout(max(0.01, self._timeout - (time.monotonic() - started)))
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionAbortedError("closed before the ACK")
            for item in decoder.feed(chunk):
                if isinstance(item, bytes):
                    return item
            if END_BLOCK in chunk and not decoder.in_frame:
                raise ConnectionAbortedError("oversized ACK")
