"""Group commit: concurrent single publishes share PublishBatch calls; each caller keeps its outcome."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from hub.events import Envelope, Event, Format
from hub.group_commit import GroupCommitPublisher
from hub.publisher import HubRejected
from tests.fakes.hub import MemoryHub


def event(n: int) -> Envelope:
    return Envelope(
        event=Event.RECEIVED,
        id=f"id-{n}",
        source="src",
        message_type="ADT^A01",
        control_id=f"C{n}",
        received_at="2026-01-01T00:00:00Z",
        format=Format.ER7,
        payload=f"MSH|^~\\&|{n}",
    )


class GatedHub(MemoryHub):
    """Holds its first PublishBatch until released, so that others queue up behind it."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.batches: list[list[str]] = []
        self.reject: set[str] = set()
        self.explode = False

    def publish_batch(self, envelopes: Sequence[Envelope]) -> list[Exception | None]:
        if not self.batches:
            self.gate.wait(timeout=10)
        self.batches.append([e.id for e in envelopes])
        if self.explode:
            raise RuntimeError("defect")
        return [HubRejected("too long") if e.id in self.reject else None for e in envelopes]


def wait_until(condition: object, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_an_idle_publish_goes_at_once_alone() -> None:
    hub = GatedHub()
    hub.gate.set()
    GroupCommitPublisher(hub).publish(event(1))
    assert hub.batches == [["id-1"]]


def test_publishes_arriving_during_a_call_share_the_next_ones() -> None:
    hub = GatedHub()
    publisher = GroupCommitPublisher(hub)
    with ThreadPoolExecutor(max_workers=16) as pool:
        first = pool.submit(publisher.publish, event(0))
        wait_until(lambda: publisher._busy)
        rest = [pool.submit(publisher.publish, event(n)) for n in range(1, 16)]
        wait_until(lambda: len(publisher._queue) == 15)
        hub.gate.set()
        for future in [first, *rest]:
            future.result(timeout=10)
    assert hub.batches[0] == ["id-0"]
    assert [len(b) for b in hub.batches[1:]] == [10, 5]  # PublishBatch's limit is 10 entries
    assert sorted(i for b in hub.batches for i in b) == sorted(f"id-{n}" for n in range(16))


def test_each_caller_gets_its_own_outcome() -> None:
    hub = GatedHub()
    hub.reject = {"id-2"}
    publisher = GroupCommitPublisher(hub)
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(publisher.publish, event(0))
        wait_until(lambda: publisher._busy)
        others = {n: pool.submit(publisher.publish, event(n)) for n in (1, 2, 3)}
        wait_until(lambda: len(publisher._queue) == 3)
        hub.gate.set()
        first.result(timeout=10)
        others[1].result(timeout=10)
        others[3].result(timeout=10)
        with pytest.raises(HubRejected):
            others[2].result(timeout=10)
    assert hub.batches[1] == ["id-1", "id-2", "id-3"]


def test_a_defect_reaches_every_caller_of_that_call_and_nobody_hangs() -> None:
    hub = GatedHub()
    hub.explode = True
    publisher = GroupCommitPublisher(hub)
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(publisher.publish, event(0))
        wait_until(lambda: publisher._busy)
        others = [pool.submit(publisher.publish, event(n)) for n in (1, 2)]
        wait_until(lambda: len(publisher._queue) == 2)
        hub.gate.set()
        for future in [first, *others]:
            with pytest.raises(RuntimeError, match="defect"):
                future.result(timeout=10)
    hub.explode = False
    publisher.publish(event(9))  # the turn was passed on: the next publish is not stuck
    assert hub.batches[-1] == ["id-9"]
