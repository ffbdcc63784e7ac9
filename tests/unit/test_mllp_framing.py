"""The MLLP frame decoder: any split of the stream, several frames per read, garbage, bounds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.ack import HEAD_BYTES
from gateway.mllp.framing import FrameDecoder, OversizedFrame, frame

MSG1 = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1||MRN1\r"
MSG2 = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|2|P|2.5\rPID|1||MRN2\r"


def test_one_frame_in_one_read() -> None:
    decoder = FrameDecoder(1024)
    assert decoder.feed(frame(MSG1)) == [MSG1]
    assert not decoder.in_frame and decoder.discarded == 0


def test_frame_split_across_reads_byte_by_byte() -> None:
    decoder = FrameDecoder(1024)
    out: list[bytes | OversizedFrame] = []
    data = frame(MSG1)
    for i in range(len(data)):
        out += decoder.feed(data[i : i + 1])
        if 0 < i < len(data) - 2:
            assert decoder.in_frame and decoder.pending == i
    assert out == [MSG1]
    assert decoder.discarded == 0


def test_several_frames_in_one_read() -> None:
    decoder = FrameDecoder(1024)
    assert decoder.feed(frame(MSG1) + frame(MSG2) + frame(MSG1)) == [MSG1, MSG2, MSG1]


def test_end_block_and_its_cr_in_different_reads() -> None:
    decoder = FrameDecoder(1024)
    assert decoder.feed(b"\x0b" + MSG1 + b"\x1c") == [MSG1]
    assert decoder.feed(b"\r\x0b" + MSG2) == []
    assert decoder.feed(b"\x1c\r") == [MSG2]
    assert decoder.discarded == 0


def test_garbage_before_start_block_is_discarded_and_counted() -> None:
    decoder = FrameDecoder(1024)
    assert decoder.feed(b"hello\r\n" + frame(MSG1)) == [MSG1]
    assert decoder.discarded == 7
    assert decoder.feed(b"\n\n" + frame(MSG2) + b"junk") == [MSG2]
    assert decoder.discarded == 7 + 2 + 4
    assert not decoder.in_frame


def test_missing_cr_after_end_block_is_tolerated() -> None:
    decoder = FrameDecoder(1024)
    assert decoder.feed(b"\x0b" + MSG1 + b"\x1c\x0b" + MSG2 + b"\x1c") == [MSG1, MSG2]
    assert decoder.discarded == 0


def test_missing_trailer_drops_the_unterminated_frame() -> None:
    decoder = FrameDecoder(1024)
    # a new start block before the end block: the first frame may be cut short, never hand it out
    assert decoder.feed(b"\x0b" + MSG1 + frame(MSG2)) == [MSG2]
    assert decoder.unterminated == 1
    assert decoder.discarded == 1 + len(MSG1)


def test_missing_trailer_at_the_end_of_the_stream_stays_pending() -> None:
    decoder = FrameDecoder(1024)
    assert decoder.feed(b"\x0b" + MSG1) == []
    assert decoder.in_frame and decoder.pending == len(MSG1)


def test_empty_frame_is_a_frame() -> None:
    assert FrameDecoder(10).feed(b"\x0b\x1c\r") == [b""]


def test_oversized_frame_keeps_its_head_and_the_stream_goes_on() -> None:
    decoder = FrameDecoder(100)
    big = MSG1 + b"OBX|1|TX|||" + b"x" * (HEAD_BYTES * 3) + b"\r"
    out: list[bytes | OversizedFrame] = []
    data = frame(big) + frame(MSG2[:90])
    for i in range(0, len(data), 1000):
        out += decoder.feed(data[i : i + 1000])
    [too_large, small] = out
    assert isinstance(too_large, OversizedFrame)
    assert too_large.size == len(big) and too_large.limit == 100
    assert too_large.head == big[:HEAD_BYTES]
    assert small == MSG2[:90]


def test_limit_is_inclusive() -> None:
    assert FrameDecoder(len(MSG1)).feed(frame(MSG1)) == [MSG1]
    [item] = FrameDecoder(len(MSG1) - 1).feed(frame(MSG1))
    assert isinstance(item, OversizedFrame)


def test_max_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(0)


@given(st.lists(st.binary(max_size=300).map(lambda b: b.translate(None, b"\x0b\x1c")), max_size=6), st.data())
def test_any_split_gives_the_same_frames(messages: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(frame(m) for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = FrameDecoder(10_000)
    out: list[bytes | OversizedFrame] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        out += decoder.feed(stream[start:cut])
        start = cut
    assert out == messages
    assert decoder.discarded == 0
