"""In-memory dedup store: the claim protocol of gateway.dedup (`_claim`), on a dict."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from gateway.dedup import (
    COMPLETED,
    INPROGRESS,
    Claim,
    ClaimState,
    DedupUnavailable,
    Fingerprint,
    _claim,
)


class MemoryDedupStore:
    """Same protocol as DynamoDedupStore, on a dict."""

    def __init__(
        self,
        ttl_seconds: int = 3600,
        in_progress_seconds: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.unavailable = False
        self._ttl = ttl_seconds
        self._in_progress = in_progress_seconds
        self._clock = clock

    def _check(self) -> None:
        if self.unavailable:
            raise DedupUnavailable("dedup table unavailable: simulated")

    def _put(self, claim: Claim, status: str, now: int, in_progress_until: int | None = None) -> None:
        self.records[claim.key] = {
            "status": status,
            "digest": claim.digest,
            "messageId": claim.message_id,
            "receivedAt": claim.received_at,
            "reused": claim.control_id_reused,
            "batchId": claim.batch_id,
            "inProgressUntil": now + self._in_progress if in_progress_until is None else in_progress_until,
            "expiresAt": now + self._ttl,
        }

    def _put_new(self, claim: Claim, now: int) -> dict[str, Any] | None:
        record = self.records.get(claim.key)
        if record is None or record["expiresAt"] < now:
            self._put(claim, INPROGRESS, now)
            return None
        return record

    def claim(self, fingerprint: Fingerprint, message_id: str, received_at: str, batch_id: str = "") -> Claim:
        self._check()
        now = int(self._clock())
        return _claim(self._put_new, self._take_over, fingerprint, message_id, received_at, batch_id, now)

    def _take_over(self, stale: Claim, stale_until: int, now: int) -> Claim:
        taken = replace(stale, state=ClaimState.NEW, resumed=True)
        self._put(taken, INPROGRESS, now)
        return taken

    def complete(self, claim: Claim) -> None:
        self._check()
        if self.records.get(claim.key, {}).get("messageId") == claim.message_id:
            self._put(claim, COMPLETED, int(self._clock()))

    def complete_many(self, claims: Sequence[Claim]) -> list[Claim]:
        self._check()
        now = int(self._clock())
        for claim in claims:
            self._put(claim, COMPLETED, now)
        return []

    def abandon(self, claim: Claim) -> None:
        self._check()
        record = self.records.get(claim.key)
        if record and record["messageId"] == claim.message_id and record["status"] == INPROGRESS:
            record["inProgressUntil"] = int(self._clock()) - 1
