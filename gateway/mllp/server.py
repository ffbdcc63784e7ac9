"""The MLLP listener: asyncio TCP (or TLS) server, one loop per connection, HL7 ACK per message.

Per connection: read, feed the frame decoder, hand each complete message to the ingest service
(blocking boto3 calls: run in a thread) and write its ACK before reading the next one. Senders
wait for each ACK, so messages of one connection are handled in order; connections run
concurrently up to ``max_connections``.

Timeouts: ``idle_timeout`` between messages, ``read_timeout`` for a message whose start block
arrived to be complete (also bounds the TLS handshake and a write the peer does not read). Bytes
outside a frame are not activity: they never extend the idle timeout.

Limits: at ``max_connections`` (or ``max_connections_per_address`` from one peer address) the
longest-idle connection in that scope is closed to admit the new one, so idle or junk-sending
connections cannot lock out a sender; only when every one of them is busy with a message is the
new connection refused.

Stop (SIGTERM): stop accepting, close connections waiting for bytes, let connections in the
middle of a message finish it (and the other complete messages of the same read) and write the
ACKs, then close. A message not acknowledged was not ingested, or is a duplicate when resent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway import ack
from gateway.ingest import MediaType, unexpected
from gateway.mllp.config import DN_SHORT_NAMES, ListenerConfig, MllpSettings, Subject
from gateway.mllp.framing import FrameDecoder, OversizedFrame, frame
from gateway.outcomes import IngestResult
from gateway.problems import Problem

log = logging.getLogger(__name__)

MLLP_MEDIA = MediaType("application/hl7-v2", charset=None)
READ_SIZE = 64 * 1024


class Ingest(Protocol):
    def ingest(self, body: bytes, media: MediaType, source: str) -> IngestResult: ...


@dataclass(eq=False)  # identity: kept in a set
class _Connection:
    task: asyncio.Task[Any]
    address: str  # the peer's host: what the per-address limit counts
    last_active: float  # loop time of the last byte inside a frame (or of connecting)
    busy: bool = False
    evicted: bool = False


@dataclass(frozen=True)
class _Who:
    source: str | None
    refusal: str | None = None  # why this connection may not send (answered AR per message)


def tls_context(listener: ListenerConfig) -> ssl.SSLContext | None:
    tls = listener.tls
    if tls is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert, tls.key)
    if tls.ca:
        context.load_verify_locations(cafile=tls.ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def peer_subject(cert: Any) -> Subject:
    """The subject of a verified peer certificate (``SSLSocket.getpeercert()``) as (TYPE, value) pairs."""
    pairs: set[tuple[str, str]] = set()
    for rdn in (cert or {}).get("subject", ()):
        for name, value in rdn:
            pairs.add((DN_SHORT_NAMES.get(name, name).upper(), value))
    return frozenset(pairs)


def format_subject(subject: Subject) -> str:
    return ",".join(f"{name}={value}" for name, value in sorted(subject)) or "(none)"


class MllpServer:
    def __init__(
        self,
        ingest: Ingest,
        listeners: Sequence[ListenerConfig],
        *,
        max_bytes: int,
        idle_timeout: float = 600.0,
        read_timeout: float = 60.0,
        max_connections: int = 64,
        max_connections_per_address: int = 0,
        stop_timeout: float = 20.0,
    ) -> None:
        if not listeners:
            raise ValueError("no MLLP listener configured")
        self._ingest = ingest
        self._listeners = list(listeners)
        self._max_bytes = max_bytes
        self._idle_timeout = idle_timeout
        self._read_timeout = read_timeout
        self._max_connections = max_connections
        self._max_per_address = max_connections_per_address
        self._stop_timeout = stop_timeout
        self._subjects = [lst.tls.subject_map() if lst.tls else {} for lst in self._listeners]
        self._servers: list[asyncio.Server] = []
        self._bound: list[tuple[str, int]] = []
        self._connections: set[_Connection] = set()
        self._stopping = False

    @classmethod
    def from_settings(cls, ingest: Ingest, settings: MllpSettings, max_bytes: int) -> MllpServer:
        return cls(
            ingest,
            settings.all_listeners(),
            max_bytes=max_bytes,
            idle_timeout=settings.idle_timeout_seconds,
            read_timeout=settings.read_timeout_seconds,
            max_connections=settings.max_connections,
            max_connections_per_address=settings.max_connections_per_address,
            stop_timeout=settings.stop_timeout_seconds,
        )

    @property
    def ingest(self) -> Ingest:
        return self._ingest

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) each listener is bound to, in configuration order (port 0 resolved)."""
        return list(self._bound)

    @property
    def active_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        for index, listener in enumerate(self._listeners):

            async def on_connect(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int = index
            ) -> None:
                await self._on_connect(index, reader, writer)

            server = await asyncio.start_server(
                on_connect,
                listener.host,
                listener.port,
                ssl=tls_context(listener),
                ssl_handshake_timeout=self._read_timeout if listener.tls else None,
                reuse_address=True,
            )
            self._servers.append(server)
            host, port = server.sockets[0].getsockname()[:2]
            self._bound.append((str(host), int(port)))
            if not listener.tls and not listener.loopback:
                log.warning(
                    "plain MLLP on a non-loopback address host=%s port=%d: whoever can connect sends as %s",
                    host,
                    port,
                    listener.source,
                )
            log.info(
                "mllp listening %s host=%s port=%d source=%s client_certificates=%s",
                "tls" if listener.tls else "tcp",
                host,
                port,
                listener.source or "by-certificate-subject",
                bool(listener.tls and listener.tls.ca),
            )

    async def stop(self) -> None:
        """Stop accepting, acknowledge messages in flight (up to stop_timeout), close everything."""
        if self._stopping:
            return
        self._stopping = True
        for server in self._servers:
            server.close()
        for conn in list(self._connections):
            if not conn.busy:
                conn.task.cancel()  # waiting for bytes: nothing in flight
        tasks = [conn.task for conn in self._connections]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._stop_timeout)
            if pending:
                log.warning(
                    "mllp stop: %d connections still busy after %.0fs; cut", len(pending), self._stop_timeout
                )
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=2)
        for server in self._servers:
            await server.wait_closed()
        log.info("mllp stopped")

    def _identify(self, index: int, writer: asyncio.StreamWriter) -> _Who:
        listener = self._listeners[index]
        subjects = self._subjects[index]
        if not subjects:
            return _Who(listener.source)
        subject = peer_subject(writer.get_extra_info("peercert"))
        source = subjects.get(subject)
        if source is None:
            return _Who(None, f"certificate subject {format_subject(subject)} is not mapped to a source")
        return _Who(source)

    async def _on_connect(
        self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = _peer(writer)
        if self._stopping:
            await _close(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        conn = _Connection(task, _address(writer), asyncio.get_running_loop().time())
        if not self._make_room(conn.address, peer):
            await _close(writer)
            return
        self._connections.add(conn)
        try:
            who = self._identify(index, writer)
            if who.refusal:
                log.warning("mllp unauthorized peer=%s listener=%d: %s", peer, index, who.refusal)
            else:
                log.info("mllp connected peer=%s source=%s", peer, who.source)
            await self._serve(conn, reader, writer, who, peer)
        except asyncio.CancelledError:
            if not (self._stopping or conn.evicted):
                raise
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            log.info("mllp connection lost peer=%s error=%s", peer, exc.__class__.__name__)
        finally:
            self._connections.discard(conn)
            await _close(writer)

    def _make_room(self, address: str, peer: str) -> bool:
        """Below both limits: True. At one: close the longest-idle connection in its scope (all
        connections, or those from the same address) and True; False when all of them are busy."""
        same_address = [c for c in self._connections if c.address == address]
        at_address_limit = bool(self._max_per_address) and len(same_address) >= self._max_per_address
        if at_address_limit and not self._evict(
            same_address, peer, f"{self._max_per_address} from this address (max)"
        ):
            return False
        if len(self._connections) >= self._max_connections:
            return self._evict(self._connections, peer, f"{self._max_connections} open (max)")
        return True

    def _evict(self, scope: Iterable[_Connection], peer: str, limit: str) -> bool:
        idle = [c for c in scope if not c.busy and not c.evicted]
        if not idle:
            log.warning("mllp refused peer=%s: %s, all busy", peer, limit)
            return False
        victim = min(idle, key=lambda c: c.last_active)
        victim.evicted = True
        victim.task.cancel()
        self._connections.discard(victim)  # its slot is the new connection's at once
        idle_for = asyncio.get_running_loop().time() - victim.last_active
        log.warning(
            "mllp connection limit: %s; closed the longest idle address=%s idle_s=%.1f for peer=%s",
            limit,
            victim.address,
            idle_for,
            peer,
        )
        return True

    async def _serve(
        self,
        conn: _Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        who: _Who,
        peer: str,
    ) -> None:
        loop = asyncio.get_running_loop()
        decoder = FrameDecoder(self._max_bytes)
        deadline: float | None = None  # when the message in progress must be complete
        reported = 0
        while not self._stopping:
            if decoder.in_frame:
                deadline = deadline or loop.time() + self._read_timeout
                timeout, kind = deadline - loop.time(), "read"
            else:
                # from the last byte inside a frame: junk outside frames does not keep a connection
                deadline, timeout, kind = None, conn.last_active + self._idle_timeout - loop.time(), "idle"
            try:
                async with asyncio.timeout(max(timeout, 0.0)):
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                log.info("mllp %s timeout peer=%s pending_bytes=%d; closing", kind, peer, decoder.pending)
                return
            if not data:
                if decoder.in_frame:
                    log.warning("mllp peer=%s closed in a message; dropped bytes=%d", peer, decoder.pending)
                return
            conn.busy = True
            try:
                frames = decoder.feed(data)
                if frames or decoder.in_frame:
                    conn.last_active = loop.time()
                for item in frames:
                    answer = await self._answer(item, who, peer)
                    if answer is not None:
                        writer.write(frame(answer.data))
                        async with asyncio.timeout(self._read_timeout):
                            await writer.drain()
            finally:
                conn.busy = False
            if frames:
                deadline = None  # time spent ingesting does not count against the next message
                conn.last_active = loop.time()
            if decoder.discarded > reported:
                log.warning(
                    "mllp peer=%s discarded bytes=%d outside frames (unterminated frames: %d)",
                    peer,
                    decoder.discarded - reported,
                    decoder.unterminated,
                )
                reported = decoder.discarded

    async def _answer(self, item: bytes | OversizedFrame, who: _Who, peer: str) -> ack.Ack | None:
        started = time.perf_counter()
        if isinstance(item, OversizedFrame):
            size = item.size
            received = ack.from_bytes(item.head)
            problem: Problem | None = Problem(
                413, "too_large", f"message of {item.size} bytes exceeds the limit of {item.limit} bytes"
            )
            result = None
        else:
            size = len(item)
            received, result, problem = await asyncio.to_thread(self._process, item, who)
        answer = _acknowledge(received, problem, result)
        code = answer.code if answer else "none"
        elapsed = (time.perf_counter() - started) * 1000
        if problem is None and result is not None:
            log.info(
                "mllp accepted id=%s source=%s bytes=%d ack=%s ms=%.1f peer=%s",
                result.id,
                who.source,
                size,
                code,
                elapsed,
                peer,
            )
        elif problem is not None and problem.status == 409:
            log.info(
                "mllp duplicate id=%s source=%s bytes=%d ack=%s peer=%s",
                problem.details.get("id"),
                who.source,
                size,
                code,
                peer,
            )
        elif problem is not None:
            log.info(
                "mllp not accepted status=%d error=%s id=%s segment=%s field=%s source=%s bytes=%d ack=%s"
                " peer=%s",
                problem.status,
                problem.code,
                problem.details.get("id"),
                problem.details.get("segment"),
                problem.details.get("field"),
                who.source,
                size,
                code,
                peer,
            )
        return answer

    def _process(self, body: bytes, who: _Who) -> tuple[ack.Received, IngestResult | None, Problem | None]:
        """Runs in a worker thread: read the MSH for the ACK, then ingest (unless refused)."""
        received = ack.Received(readable=False)
        try:
            received = ack.from_bytes(body)
            if who.source is None:
                refusal = Problem(403, "forbidden", who.refusal or "no source for this connection")
                return received, None, refusal
            return received, self._ingest.ingest(body, MLLP_MEDIA, who.source), None
        except Problem as problem:
            return received, None, problem
        except Exception as exc:  # never leave the sender without an answer
            return received, None, unexpected(exc)  # AR, ERR-3 207, error id


def _acknowledge(
    received: ack.Received, problem: Problem | None, result: IngestResult | None
) -> ack.Ack | None:
    try:
        return ack.acknowledge(received, problem, result=result)
    except Exception as exc:  # the ACK builder failed on this MSH: answer from defaults
        return ack.acknowledge(ack.Received(readable=False), unexpected(exc))


def _address(writer: asyncio.StreamWriter) -> str:
    name = writer.get_extra_info("peername")
    return str(name[0]) if isinstance(name, tuple) and name else str(name)


def _peer(writer: asyncio.StreamWriter) -> str:
    name = writer.get_extra_info("peername")
    if isinstance(name, tuple) and len(name) >= 2:
        return f"{name[0]}:{name[1]}"
    return str(name)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2):
            await writer.wait_closed()
