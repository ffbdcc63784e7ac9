"""Splitting a batch body accepted as a whole: the same per-message dedup and publishing as a small
batch, in chunks, paced by the hub's backlog; then one `batch.completed` event with every outcome."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from gateway.ingest import IngestService
from gateway.outcomes import BatchOutcome, MemberOutcome, MessageSummary, Status
from hub import er7
from hub.events import Envelope, Event, Format
from hub.payloads import PayloadStore, load_payload
from hub.publisher import Publisher

log = logging.getLogger(__name__)

CHUNK = 100  # messages claimed, then published together, at a time


class BatchSplitter:
    def __init__(
        self,
        ingest: IngestService,
        publisher: Publisher,
        payloads: PayloadStore,
        *,
        wait_while_behind: Callable[[], None] = lambda: None,
        chunk: int = CHUNK,
        duty: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._ingest = ingest
        self._publisher = publisher
        self._payloads = payloads
        self._wait_while_behind = wait_while_behind
        self._chunk = chunk
        # The share of time the splitter works: after a chunk that took t seconds it rests
        # t·(1 − duty)/duty, leaving the rest of the hub's capacity to the senders of single messages.
        self._rest_per_work = (1 - duty) / duty if 0 < duty < 1 else 0.0
        self._clock = clock
        self._sleep = sleep

    def handle(self, envelope: Envelope) -> None:
        if envelope.event is not Event.BATCH_RECEIVED:
            return
        batch = er7.split_batch(str(load_payload(envelope, self._payloads)))
        problems = tuple((envelope.batch or {}).get("problems") or ())
        seen: dict[str, MessageSummary] = {}
        results: list[MemberOutcome] = []
        total = len(batch.messages)
        for start in range(0, total, self._chunk):
            self._wait_while_behind()
            began = self._clock()
            results += self._ingest.accept_members(
                batch.messages[start : start + self._chunk],
                envelope.source,
                envelope.id,
                problems,
                seen,
                first_index=start + 1,
                count=total,
            )
            if self._rest_per_work and start + self._chunk < total:
                self._sleep((self._clock() - began) * self._rest_per_work)
        self._ingest.flush()  # the claims completed before the batch's event is deleted
        report = BatchOutcome(envelope.id, tuple(results), batch.declared_counts, problems)
        self._publisher.publish(envelope.derive(Event.BATCH_COMPLETED, Format.JSON, payload=report.to_dict()))
        log.info(
            "batch split id=%s source=%s messages=%d accepted=%d duplicate=%d rejected=%d",
            envelope.id,
            envelope.source,
            total,
            *(report.count(s) for s in Status),
        )


def backlog_pacer(is_behind: Callable[[], bool], stop: threading.Event | None = None) -> Callable[[], None]:
    """Waits (in steps of a second) while the hub is behind: a large batch must not crowd out the
    senders of single messages, whose requests are refused while the backlog is over its limit."""
    stop = stop or threading.Event()

    def wait() -> None:
        while is_behind() and not stop.wait(1.0):
            pass

    return wait
