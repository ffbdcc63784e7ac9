"""Dedup completions written in batches, off the request path.

Once a message is in the hub its claim is marked COMPLETED, so that a resend is answered "duplicate".
That write needs no condition (a claim keeps its message id for life: a takeover reuses it), so it
can go in BatchWriteItem calls of up to 25, collected for up to ``linger_seconds``: one call per
~25 messages instead of one per message (see docs/decisions/0010).

What the delay costs, and why it is safe:
- a resend reaching *this* process while its completion waits is answered "duplicate" all the same
  (the pending ids are checked first);
- a resend reaching another front door within the linger sees the claim in progress (503, retry);
- a completion lost with a crash leaves the claim in progress: the resend takes it over after
  ``in_progress_seconds`` and republishes under the same id, which the lake writer applies once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

from gateway.dedup import Claim, ClaimState, DedupStore, Fingerprint

log = logging.getLogger(__name__)

MAX_BATCH = 25  # BatchWriteItem's limit


class CompletesInBatches(DedupStore, Protocol):
    def complete_many(self, claims: Sequence[Claim]) -> list[Claim]:
        """Marks the claims COMPLETED; returns those it could not write."""
        ...


class DeferredCompletions:
    """A DedupStore whose completions are written by a background thread, in batches."""

    def __init__(
        self,
        store: CompletesInBatches,
        linger_seconds: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._linger = linger_seconds
        self._clock = clock
        self._pending: dict[str, Claim] = {}  # by message id, in arrival order
        self._writing: dict[str, Claim] = {}  # taken for a batch write under way
        self._first_pending_at = 0.0
        self._lock = threading.Condition()
        self._flushing = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    # DedupStore
    def claim(self, fingerprint: Fingerprint, message_id: str, received_at: str, batch_id: str = "") -> Claim:
        claim = self._store.claim(fingerprint, message_id, received_at, batch_id)
        if claim.state is ClaimState.IN_PROGRESS and self.is_pending(claim.message_id):
            return replace(claim, state=ClaimState.DUPLICATE)  # in the hub; its record is on its way
        return claim

    def complete(self, claim: Claim) -> None:
        if self._linger <= 0 or self._closed:
            with self._lock:
                self._writing[claim.message_id] = claim
            self._write([claim])
            return
        with self._lock:
            if not self._pending:
                self._first_pending_at = self._clock()
            self._pending[claim.message_id] = claim
            self._start()
            self._lock.notify()

    def abandon(self, claim: Claim) -> None:
        self._store.abandon(claim)

    def is_pending(self, message_id: str) -> bool:
        with self._lock:
            return message_id in self._pending or message_id in self._writing

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._writing)

    def flush(self) -> None:
        """Writes every pending completion now (the caller waits, also for a write under way)."""
        while batch := self._take():
            self._write(batch)
        with self._lock:  # a batch the background thread took is written too
            while self._writing:
                self._lock.wait(timeout=1.0)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            self._lock.notify_all()
        self.flush()

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="dedup-completions", daemon=True)
            self._thread.start()

    def _due(self) -> float | None:
        """Seconds until the pending batch is due (0: now); None when nothing is pending."""
        if not self._pending:
            return None
        if len(self._pending) >= MAX_BATCH or self._closed:
            return 0.0
        return max(0.0, self._first_pending_at + self._linger - self._clock())

    def _take(self) -> list[Claim]:
        """Up to MAX_BATCH pending claims, moved to `_writing` (still pending for `claim`)."""
        with self._lock:
            batch = [self._pending.pop(message_id) for message_id in list(self._pending)[:MAX_BATCH]]
            self._writing.update((claim.message_id, claim) for claim in batch)
            self._first_pending_at = self._clock()  # what is left arrived during this batch
            return batch

    def _run(self) -> None:
        while True:
            with self._lock:
                due = self._due()
                while due is None or due > 0:
                    if due is None and self._closed:
                        return
                    self._lock.wait(timeout=due if due is not None else 1.0)
                    due = self._due()
            self._write(self._take())

    def _write(self, batch: list[Claim]) -> None:
        if not batch:
            return
        with self._flushing:
            try:
                failed = self._store.complete_many(batch)
            except Exception as exc:  # in the hub already: a resend takes the claim over (same id)
                failed = batch
                log.warning("dedup completions failed count=%d error=%s", len(batch), exc.__class__.__name__)
            else:
                if failed:
                    log.warning("dedup completions not written count=%d", len(failed))
            with self._lock:
                for claim in batch:  # written or given up: a claim left in progress is taken over later
                    self._writing.pop(claim.message_id, None)
                self._lock.notify_all()
