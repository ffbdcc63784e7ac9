"""The MLLP listener on a real socket, with the in-memory hub and dedup store.

The server runs on its own event loop in a thread; clients are plain blocking sockets, the way
interface engines talk to it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.ingest import IngestService, MediaType
from gateway.mllp.config import ListenerConfig, MllpSettings, TlsConfig
from gateway.mllp.framing import frame
from gateway.mllp.server import MllpServer
from hub.events import Envelope, Event
from tests.fakes.dedup import MemoryDedupStore
from tests.fakes.hub import MemoryHub

MSG = b"MSH|^~\\&|LAB|HOSP_A|LAKE|AWS|20260101120000||ADT^A01^ADT_A01|CTRL-1|P|2.5.1\rPID|1||MRN1||DOE^JOHN\r"
DEADLINE = 5.0


def received(hub: MemoryHub) -> list[Envelope]:
    """What went into the hub as accepted messages (unreadable ones may be kept as failed events)."""
    return [e for e in hub.published if e.event is Event.RECEIVED]


def message(control_id: str, extra: bytes = b"") -> bytes:
    return MSG.replace(b"CTRL-1", control_id.encode()) + extra


def fields(ack: bytes, segment: str) -> list[str]:
    text = ack.decode()
    return next(s for s in text.split("\r") if s.startswith(segment)).split(text[3])


class SlowIngest:
    """Wraps the real ingest service; can hold a message until the test lets it go."""

    def __init__(self, inner: IngestService) -> None:
        self.inner = inner
        self.hold = threading.Event()
        self.hold.set()
        self.started = threading.Event()
        self.explode = False

    def ingest(self, body: bytes, media: MediaType, source: str) -> dict[str, Any]:
        self.started.set()
        if not self.hold.wait(DEADLINE):
            raise AssertionError("held too long")
        if self.explode:
            raise RuntimeError("boom")
        return self.inner.ingest(body, media, source)


@dataclass
class Running:
    server: MllpServer
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    hub: MemoryHub
    ingest: SlowIngest

    def port(self, index: int = 0) -> int:
        return self.server.addresses[index][1]

    def connect(self, index: int = 0) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port(index)), timeout=DEADLINE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def stop_async(self) -> Future[None]:
        return asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop)


def start(listeners: list[ListenerConfig] | None = None, **options: Any) -> Running:
    hub = MemoryHub()
    ingest = SlowIngest(IngestService(MemoryDedupStore(), hub))
    options.setdefault("max_bytes", 4096)
    server = MllpServer(
        ingest, listeners or [ListenerConfig(host="127.0.0.1", port=0, source="hospital-a")], **options
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(DEADLINE)
    return Running(server, loop, thread, hub, ingest)


def shutdown(running: Running) -> None:
    running.ingest.hold.set()
    running.stop_async().result(DEADLINE * 2)
    running.loop.call_soon_threadsafe(running.loop.stop)
    running.thread.join(DEADLINE)
    running.loop.close()


@pytest.fixture
def mllp() -> Iterator[Running]:
    running = start()
    try:
        yield running
    finally:
        shutdown(running)


def read_ack(sock: socket.socket) -> bytes:
    """One MLLP-framed answer, read with a deadline (byte by byte: never past its end)."""
    data = b""
    deadline = time.monotonic() + DEADLINE
    while not data.endswith(b"\x1c\r"):
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(1)
        if not chunk:
            raise AssertionError(f"connection closed; got {data!r}")
        data += chunk
    assert data.startswith(b"\x0b") and data.count(b"\x1c") == 1, data
    return data[1:-2]


def exchange(sock: socket.socket, body: bytes) -> bytes:
    sock.sendall(frame(body))
    return read_ack(sock)


def assert_closed_by_server(sock: socket.socket) -> None:
    sock.settimeout(DEADLINE)
    try:
        assert sock.recv(1024) == b""
    except ConnectionResetError:
        pass


def test_accepted_message_gets_aa_after_it_is_in_the_hub(mllp: Running) -> None:
    with mllp.connect() as sock:
        ack = exchange(sock, MSG)
    assert fields(ack, "MSA") == ["MSA", "AA", "CTRL-1"]
    assert fields(ack, "MSH")[2:6] == ["LAKE", "AWS", "LAB", "HOSP_A"]
    [event] = received(mllp.hub)
    assert event.source == "hospital-a" and event.control_id == "CTRL-1"
    assert event.payload == MSG.decode()


def test_many_messages_on_one_connection(mllp: Running) -> None:
    with mllp.connect() as sock:
        for i in range(5):
            assert fields(exchange(sock, message(f"M{i}")), "MSA")[1:3] == ["AA", f"M{i}"]
    assert [e.control_id for e in received(mllp.hub)] == [f"M{i}" for i in range(5)]


def test_unreadable_message_gets_ae_with_err(mllp: Running) -> None:
    with mllp.connect() as sock:
        ack = exchange(sock, b"PID|1||MRN1\r")
        assert fields(ack, "MSA") == ["MSA", "AE"]
        err = fields(ack, "ERR")
        assert err[2] == "PID^1" and err[3].startswith("100^") and err[4] == "E" and err[8]
        # the connection goes on
        assert fields(exchange(sock, MSG), "MSA")[1] == "AA"
    assert len(received(mllp.hub)) == 1


def test_hub_unavailable_gets_ar_and_the_resend_is_accepted(mllp: Running) -> None:
    mllp.hub.fail_next = 1
    with mllp.connect() as sock:
        refused = exchange(sock, MSG)
        assert fields(refused, "MSA") == ["MSA", "AR", "CTRL-1"]
        assert fields(refused, "ERR")[5] == "unavailable"
        assert fields(exchange(sock, MSG), "MSA")[1] == "AA"
    assert len(received(mllp.hub)) == 1


def test_unexpected_error_gets_ar(mllp: Running) -> None:
    mllp.ingest.explode = True
    with mllp.connect() as sock:
        assert fields(exchange(sock, MSG), "MSA")[1] == "AR"


def test_duplicate_gets_aa_and_is_logged_with_the_original_id(
    mllp: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.mllp.server")
    with mllp.connect() as first:
        assert fields(exchange(first, MSG), "MSA")[1] == "AA"
    with mllp.connect() as again:
        assert fields(exchange(again, MSG.replace(b"\r", b"\n")), "MSA")[1:3] == ["AA", "CTRL-1"]
    [event] = received(mllp.hub)
    [line] = [r.getMessage() for r in caplog.records if "mllp duplicate" in r.getMessage()]
    assert f"id={event.id}" in line and "ack=AA" in line
    assert "MRN1" not in caplog.text and "DOE" not in caplog.text  # never message content


def test_enhanced_mode_commit_ack(mllp: Running) -> None:
    enhanced = MSG.replace(b"|2.5.1\r", b"|2.5.1|||AL|NE\r")
    silent = message("QUIET").replace(b"|2.5.1\r", b"|2.5.1|||NE|NE\r")
    with mllp.connect() as sock:
        assert fields(exchange(sock, enhanced), "MSA")[1:3] == ["CA", "CTRL-1"]
        # NE/NE asks for no acknowledgement at all: the next message's ACK is the next answer
        sock.sendall(frame(silent) + frame(message("AFTER")))
        assert fields(read_ack(sock), "MSA")[1:3] == ["AA", "AFTER"]
    assert [e.control_id for e in received(mllp.hub)] == ["CTRL-1", "QUIET", "AFTER"]


def test_message_split_across_reads(mllp: Running) -> None:
    data = b"garbage\r\n" + frame(MSG)
    head, tail = data[:-3], data[-3:]
    with mllp.connect() as sock:
        for i in range(0, len(head), 7):
            sock.sendall(head[i : i + 7])
        sock.settimeout(0.05)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # no answer to an incomplete frame
        sock.sendall(tail)
        ack = read_ack(sock)
    assert fields(ack, "MSA")[1:3] == ["AA", "CTRL-1"]


def test_several_messages_in_one_read_are_answered_in_order(mllp: Running) -> None:
    with mllp.connect() as sock:
        sock.sendall(b"".join(frame(message(f"B{i}")) for i in range(3)) + frame(b"PID|1\r"))
        codes = [fields(read_ack(sock), "MSA")[1:3] for _ in range(4)]
    assert codes == [["AA", "B0"], ["AA", "B1"], ["AA", "B2"], ["AE"]]


def test_too_large_gets_ar_and_the_connection_goes_on(mllp: Running) -> None:
    big = message("BIG", b"NTE|1||" + b"x" * 10_000 + b"\r")
    with mllp.connect() as sock:
        refused = exchange(sock, big)
        assert fields(refused, "MSA") == ["MSA", "AR", "BIG"]
        assert fields(refused, "ERR")[5] == "too_large"
        assert fields(exchange(sock, MSG), "MSA")[1] == "AA"
    assert [e.control_id for e in received(mllp.hub)] == ["CTRL-1"]


def test_idle_and_read_timeouts_close_the_connection() -> None:
    running = start(idle_timeout=0.2, read_timeout=0.3)
    try:
        with running.connect() as idle:
            assert fields(exchange(idle, MSG), "MSA")[1] == "AA"
            assert_closed_by_server(idle)
        with running.connect() as slow:
            slow.sendall(frame(message("SLOW"))[:20])  # a message that never completes
            assert_closed_by_server(slow)
        assert [e.control_id for e in received(running.hub)] == ["CTRL-1"]
    finally:
        shutdown(running)


def test_connections_beyond_the_limit_are_closed_while_every_open_one_is_busy() -> None:
    # (an idle one would be closed instead, to admit the new one: tests/unit/test_mllp_limits.py)
    running = start(max_connections=1)
    try:
        with running.connect() as first:
            running.ingest.started.clear()
            running.ingest.hold.clear()
            first.sendall(frame(message("BUSY")))
            assert running.ingest.started.wait(DEADLINE)
            with running.connect() as second:
                assert_closed_by_server(second)
            running.ingest.hold.set()
            assert fields(read_ack(first), "MSA")[1:3] == ["AA", "BUSY"]
            assert fields(exchange(first, message("STILL")), "MSA")[1] == "AA"
    finally:
        shutdown(running)


def test_stop_acknowledges_the_message_in_flight_then_closes() -> None:
    running = start()
    try:
        idle = running.connect()
        busy = running.connect()
        assert fields(exchange(idle, message("IDLE")), "MSA")[1] == "AA"
        running.ingest.started.clear()
        running.ingest.hold.clear()
        busy.sendall(frame(message("INFLIGHT")))
        assert running.ingest.started.wait(DEADLINE)
        stopping = running.stop_async()
        assert_closed_by_server(idle)  # nothing in flight there: closed at once
        assert not stopping.done()
        running.ingest.hold.set()
        assert fields(read_ack(busy), "MSA")[1:3] == ["AA", "INFLIGHT"]
        assert_closed_by_server(busy)
        stopping.result(DEADLINE)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", running.port()), timeout=1).close()
        idle.close()
        busy.close()
    finally:
        shutdown(running)


def test_settings_make_the_default_loopback_listener_plus_extra_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HL7LAKE_MLLP_PORT", "0")
    monkeypatch.setenv("HL7LAKE_MLLP_LISTENERS", '[{"host": "127.0.0.1", "port": 0, "source": "hospital-b"}]')
    settings = MllpSettings()
    listeners = settings.all_listeners()
    assert [(lst.host, lst.source) for lst in listeners] == [
        ("127.0.0.1", "hospital-a"),
        ("127.0.0.1", "hospital-b"),
    ]
    running = start(settings.all_listeners())
    try:
        with running.connect(1) as sock:
            assert fields(exchange(sock, MSG), "MSA")[1] == "AA"
        assert received(running.hub)[0].source == "hospital-b"
    finally:
        shutdown(running)


def test_listener_config_needs_a_source() -> None:
    with pytest.raises(ValueError):
        ListenerConfig(port=1)
    with pytest.raises(ValueError):
        TlsConfig(cert="c", key="k", subjects={"CN=x": "a"})  # subjects need a CA


# ---- TLS with client certificates: the certificate subject says who sends ----


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str, issuer: str, key: ec.EllipticCurvePrivateKey, signer: ec.EllipticCurvePrivateKey, ca: bool
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if subject == "localhost":
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
    return builder.sign(signer, hashes.SHA256())


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")

    def write(name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
        cert_path, key_path = root / f"{name}.crt", root / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_path, key_path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_path, _ = write("ca", _cert("Test CA", "Test CA", ca_key, ca_key, True), ca_key)
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in ("localhost", "lab-engine", "stranger")}
    certs = {name: write(name, _cert(name, "Test CA", key, ca_key, False), key) for name, key in keys.items()}
    server_cert, server_key = certs.pop("localhost")
    return Pki(ca_path, server_cert, server_key, certs)


@pytest.fixture
def mllps(pki: Pki) -> Iterator[Running]:
    tls = TlsConfig(
        cert=str(pki.server_cert),
        key=str(pki.server_key),
        ca=str(pki.ca),
        subjects={"CN=lab-engine": "hospital-b"},
    )
    running = start([ListenerConfig(host="127.0.0.1", port=0, tls=tls)])
    try:
        yield running
    finally:
        shutdown(running)


def tls_connect(running: Running, pki: Pki, client: str | None) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if client:
        cert, key = pki.clients[client]
        context.load_cert_chain(str(cert), str(key))
    raw = socket.create_connection(("127.0.0.1", running.port()), timeout=DEADLINE)
    return context.wrap_socket(raw, server_hostname="localhost")


def test_tls_client_certificate_subject_maps_to_the_source(mllps: Running, pki: Pki) -> None:
    with tls_connect(mllps, pki, "lab-engine") as sock:
        assert fields(exchange(sock, MSG), "MSA")[1:3] == ["AA", "CTRL-1"]
    [event] = received(mllps.hub)
    assert event.source == "hospital-b"


def test_tls_unknown_subject_is_refused_with_ar(mllps: Running, pki: Pki) -> None:
    with tls_connect(mllps, pki, "stranger") as sock:
        refused = exchange(sock, MSG)
    assert fields(refused, "MSA") == ["MSA", "AR", "CTRL-1"]
    err = fields(refused, "ERR")
    assert err[5] == "forbidden" and "CN=stranger" in err[8]
    assert received(mllps.hub) == []


def test_tls_without_client_certificate_is_cut_off(mllps: Running, pki: Pki) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        with tls_connect(mllps, pki, None) as sock:
            # TLS 1.3: the server's verdict on the missing certificate arrives after the handshake
            sock.sendall(frame(MSG))
            assert sock.recv(1024) == b""
            raise ConnectionError("closed without an answer")
    assert received(mllps.hub) == []
