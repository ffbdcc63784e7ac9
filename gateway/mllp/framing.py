"""Incremental MLLP frame decoder: bytes as TCP delivers them in, complete messages out.

A frame is ``0x0B <message> 0x1C 0x0D``. The decoder accepts any split of the stream across
reads and any number of frames per read. It is lenient where that is safe and strict where a
lenient reading could acknowledge a truncated message:

- bytes outside a frame (before a start block) are discarded and counted (``discarded``);
- ``0x1C`` ends a frame; the ``0x0D`` after it is consumed when present (a missing one is not an
  error: 0x1C never occurs inside ER7 text);
- a start block inside a frame means the frame in progress was never terminated: it is dropped
  (counted in ``unterminated`` and ``discarded``), never handed out, since it may be cut short;
- a frame whose message exceeds ``max_bytes`` comes out as an :class:`OversizedFrame` (its first
  bytes, enough to read the MSH and answer, plus its size) once its end block arrives; memory
  stays bounded while the rest is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.ack import HEAD_BYTES

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\x0d"

_OUTSIDE, _INSIDE, _AFTER_END = 0, 1, 2


@dataclass(frozen=True)
class OversizedFrame:
    """A complete frame whose message was larger than the bound; only its head was kept."""

    head: bytes
    size: int
    limit: int


def frame(message: bytes) -> bytes:
    """Wrap one message in an MLLP block."""
    return START_BLOCK + message + END_BLOCK + CARRIAGE_RETURN


class FrameDecoder:
    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self.discarded = 0  # bytes dropped: outside any frame, or in an unterminated frame
        self.unterminated = 0  # frames dropped because a new start block came before their end
        self._state = _OUTSIDE
        self._buffer = bytearray()
        self._size = 0
        self._oversized = False

    @property
    def in_frame(self) -> bool:
        """True while a frame has started and its end block has not arrived."""
        return self._state == _INSIDE

    @property
    def pending(self) -> int:
        """Bytes of the frame in progress (0 outside a frame)."""
        return self._size if self._state == _INSIDE else 0

    def feed(self, data: bytes) -> list[bytes | OversizedFrame]:
        """Consume one read; returns the frames it completed, in order."""
        out: list[bytes | OversizedFrame] = []
        pos, end = 0, len(data)
        while pos < end:
            if self._state == _AFTER_END:
                if data[pos] == CARRIAGE_RETURN[0]:
                    pos += 1
                self._state = _OUTSIDE
            elif self._state == _OUTSIDE:
                start = data.find(START_BLOCK, pos)
                if start < 0:
                    self.discarded += end - pos
                    break
                self.discarded += start - pos
                pos = start + 1
                self._begin()
            else:
                stop = data.find(END_BLOCK, pos)
                limit = stop if stop >= 0 else end
                restart = data.find(START_BLOCK, pos, limit)
                if restart >= 0:  # the frame in progress never got its end block
                    self.unterminated += 1
                    self.discarded += self._size + (restart - pos) + 1  # + its own start block
                    self._state = _OUTSIDE
                    self._buffer = bytearray()
                    pos = restart
                    continue
                self._append(data[pos:limit])
                if stop < 0:
                    break
                out.append(self._finish())
                pos = stop + 1
                self._state = _AFTER_END
        return out

    def _begin(self) -> None:
        self._state = _INSIDE
        self._buffer = bytearray()
        self._size = 0
        self._oversized = False

    def _append(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._oversized:
            room = HEAD_BYTES - len(self._buffer)
            if room > 0:
                self._buffer += chunk[:room]
            return
        self._buffer += chunk
        if self._size > self.max_bytes:
            self._oversized = True
            del self._buffer[HEAD_BYTES:]

    def _finish(self) -> bytes | OversizedFrame:
        data = bytes(self._buffer)
        self._buffer = bytearray()
        if self._oversized:
            return OversizedFrame(head=data, size=self._size, limit=self.max_bytes)
        return data
