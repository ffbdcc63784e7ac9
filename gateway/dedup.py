"""Self-managed deduplication (Powertools-style idempotency records in DynamoDB).

A record per (source, SHA-256 of the normalized message): INPROGRESS while the gateway publishes,
COMPLETED once the message is in the hub. The record names the message id and receipt time the
message was given, so that whatever happens to the request holding the claim, the message keeps
that identity:

- a publish that failed (or timed out, and so may have reached the hub after all) *abandons* the
  claim: the sender's retry takes it over at once;
- a claim left by a crashed front door goes stale after ``in_progress_seconds`` and is taken over
  by the sender's retry.

A takeover republishes under the claim's id and receipt time, so if the first publish did reach the
hub the second is the very same message (the lake writer is idempotent by id): never two entries.
Control ids (MSH-10) get a record of their own to flag reuse with different content.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


class DedupUnavailable(RuntimeError):
    pass


class ClaimState(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"
    IN_PROGRESS = "in_progress"


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    message_id: str
    received_at: str
    # True when this claim took over one that was abandoned or left by a crash: the message may
    # already be in the hub under this id.
    resumed: bool = False


class DedupStore(Protocol):
    def claim(self, key: str, message_id: str, received_at: str) -> Claim: ...

    def complete(self, key: str, claim: Claim) -> None: ...

    def abandon(self, key: str, claim: Claim) -> None: ...

    def control_id_reused(self, source: str, control_id: str, digest: str, message_id: str) -> bool: ...


INPROGRESS, COMPLETED = "INPROGRESS", "COMPLETED"


class DynamoDedupStore:
    def __init__(
        self,
        dynamodb: Any,
        table: str,
        ttl_seconds: int,
        in_progress_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ddb = dynamodb
        self._table = table
        self._ttl = ttl_seconds
        self._in_progress = in_progress_seconds
        self._clock = clock

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._ddb, operation)(TableName=self._table, **kwargs)
        except self._ddb.exceptions.ConditionalCheckFailedException:
            raise
        except Exception as exc:
            raise DedupUnavailable(f"dedup table unavailable: {exc.__class__.__name__}") from exc

    def _record(self, key: str, status: str, message_id: str, received_at: str, now: int) -> dict[str, Any]:
        return {
            "key": {"S": key},
            "status": {"S": status},
            "messageId": {"S": message_id},
            "receivedAt": {"S": received_at},
            "inProgressUntil": {"N": str(now + self._in_progress)},
            "expiresAt": {"N": str(now + self._ttl)},
        }

    def claim(self, key: str, message_id: str, received_at: str) -> Claim:
        now = int(self._clock())
        try:
            # One round trip: on a conflict DynamoDB returns the record that is there.
            self._call(
                "put_item",
                Item=self._record(key, INPROGRESS, message_id, received_at, now),
                # New, or a record past its TTL that DynamoDB has not swept yet.
                ConditionExpression="attribute_not_exists(#k) OR #e < :now",
                ExpressionAttributeNames={"#k": "key", "#e": "expiresAt"},
                ExpressionAttributeValues={":now": {"N": str(now)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return Claim(ClaimState.NEW, message_id, received_at)
        except self._ddb.exceptions.ConditionalCheckFailedException as exc:
            item = exc.response.get("Item")
        if item is None:  # an emulator that does not return the old item
            item = self._call("get_item", Key={"key": {"S": key}}, ConsistentRead=True).get("Item")
            if item is None:  # deleted between the two calls: the sender's retry will claim it
                return Claim(ClaimState.IN_PROGRESS, message_id, received_at)
        holder = Claim(
            ClaimState.DUPLICATE if item["status"]["S"] == COMPLETED else ClaimState.IN_PROGRESS,
            item["messageId"]["S"],
            item.get("receivedAt", {}).get("S", received_at),
        )
        if holder.state is ClaimState.IN_PROGRESS and int(item["inProgressUntil"]["N"]) < now:
            return self._take_over(key, holder, item["inProgressUntil"]["N"], now)
        return holder

    def _take_over(self, key: str, stale: Claim, stale_until: str, now: int) -> Claim:
        try:
            self._call(
                "put_item",
                Item=self._record(key, INPROGRESS, stale.message_id, stale.received_at, now),
                # Exactly this stale claim: of two retries racing for it, one wins.
                ConditionExpression="#s = :inprogress AND #u = :until AND #m = :id",
                ExpressionAttributeNames={"#s": "status", "#u": "inProgressUntil", "#m": "messageId"},
                ExpressionAttributeValues={
                    ":inprogress": {"S": INPROGRESS},
                    ":until": {"N": stale_until},
                    ":id": {"S": stale.message_id},
                },
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return Claim(ClaimState.IN_PROGRESS, stale.message_id, stale.received_at)
        return Claim(ClaimState.NEW, stale.message_id, stale.received_at, resumed=True)

    def complete(self, key: str, claim: Claim) -> None:
        # A conditional put of the whole record: a third of the emulator's cost of an UpdateItem.
        self._call(
            "put_item",
            Item=self._record(key, COMPLETED, claim.message_id, claim.received_at, int(self._clock())),
            ConditionExpression="#m = :id",
            ExpressionAttributeNames={"#m": "messageId"},
            ExpressionAttributeValues={":id": {"S": claim.message_id}},
        )

    def abandon(self, key: str, claim: Claim) -> None:
        """The publish failed (it may still have reached the hub): let the next retry take over now."""
        now = int(self._clock())
        record = self._record(key, INPROGRESS, claim.message_id, claim.received_at, now)
        record["inProgressUntil"] = {"N": str(now - 1)}
        # A failed condition: completed by a racing retry, or taken over; nothing to abandon.
        with contextlib.suppress(self._ddb.exceptions.ConditionalCheckFailedException):
            self._call(
                "put_item",
                Item=record,
                ConditionExpression="#m = :id AND #s = :inprogress",
                ExpressionAttributeNames={"#m": "messageId", "#s": "status"},
                ExpressionAttributeValues={":id": {"S": claim.message_id}, ":inprogress": {"S": INPROGRESS}},
            )

    def control_id_reused(self, source: str, control_id: str, digest: str, message_id: str) -> bool:
        key = f"ctl#{source}#{control_id}"
        now = int(self._clock())
        try:
            self._call(
                "put_item",
                Item={
                    "key": {"S": key},
                    "digest": {"S": digest},
                    "messageId": {"S": message_id},
                    "expiresAt": {"N": str(now + self._ttl)},
                },
                ConditionExpression="attribute_not_exists(#k) OR #e < :now OR #d = :digest",
                ExpressionAttributeNames={"#k": "key", "#e": "expiresAt", "#d": "digest"},
                ExpressionAttributeValues={":now": {"N": str(now)}, ":digest": {"S": digest}},
            )
            return False
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return True


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

    def _put(self, key: str, status: str, claim: Claim, now: float) -> None:
        self.records[key] = {
            "status": status,
            "messageId": claim.message_id,
            "receivedAt": claim.received_at,
            "inProgressUntil": int(now) + self._in_progress,
            "expiresAt": int(now) + self._ttl,
        }

    def claim(self, key: str, message_id: str, received_at: str) -> Claim:
        self._check()
        now = int(self._clock())
        record = self.records.get(key)
        if record is None or record["expiresAt"] < now:
            claim = Claim(ClaimState.NEW, message_id, received_at)
            self._put(key, INPROGRESS, claim, now)
            return claim
        holder = Claim(ClaimState.IN_PROGRESS, record["messageId"], record["receivedAt"])
        if record["status"] == COMPLETED:
            return Claim(ClaimState.DUPLICATE, holder.message_id, holder.received_at)
        if record["inProgressUntil"] < now:
            self._put(key, INPROGRESS, holder, now)
            return Claim(ClaimState.NEW, holder.message_id, holder.received_at, resumed=True)
        return holder

    def complete(self, key: str, claim: Claim) -> None:
        self._check()
        if self.records.get(key, {}).get("messageId") == claim.message_id:
            self._put(key, COMPLETED, claim, self._clock())

    def abandon(self, key: str, claim: Claim) -> None:
        self._check()
        record = self.records.get(key)
        if record and record["messageId"] == claim.message_id and record["status"] == INPROGRESS:
            record["inProgressUntil"] = int(self._clock()) - 1

    def control_id_reused(self, source: str, control_id: str, digest: str, message_id: str) -> bool:
        self._check()
        key = f"ctl#{source}#{control_id}"
        now = int(self._clock())
        record = self.records.get(key)
        if record is None or record["expiresAt"] < now or record["digest"] == digest:
            self.records[key] = {"digest": digest, "messageId": message_id, "expiresAt": now + self._ttl}
            return False
        return True
