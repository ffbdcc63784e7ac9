"""Self-managed deduplication (Powertools-style idempotency records in DynamoDB).

A record per (source, SHA-256 of the normalized message): INPROGRESS while the gateway publishes,
COMPLETED once the message is in the hub. A failed publish deletes its claim, so the sender's retry
is not mistaken for a duplicate; a claim left by a crash expires after `in_progress_seconds`.
Control ids (MSH-10) get a record of their own to flag reuse with different content.
"""

from __future__ import annotations

import contextlib
import time
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


class DedupStore(Protocol):
    def claim(self, key: str, message_id: str) -> Claim: ...

    def complete(self, key: str, message_id: str) -> None: ...

    def release(self, key: str, message_id: str) -> None: ...

    def control_id_reused(self, source: str, control_id: str, digest: str, message_id: str) -> bool: ...


INPROGRESS, COMPLETED = "INPROGRESS", "COMPLETED"


class DynamoDedupStore:
    def __init__(self, dynamodb: Any, table: str, ttl_seconds: int, in_progress_seconds: int) -> None:
        self._ddb = dynamodb
        self._table = table
        self._ttl = ttl_seconds
        self._in_progress = in_progress_seconds

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._ddb, operation)(TableName=self._table, **kwargs)
        except self._ddb.exceptions.ConditionalCheckFailedException:
            raise
        except Exception as exc:
            raise DedupUnavailable(f"dedup table unavailable: {exc.__class__.__name__}") from exc

    def claim(self, key: str, message_id: str) -> Claim:
        now = int(time.time())
        try:
            self._call(
                "put_item",
                Item={
                    "key": {"S": key},
                    "status": {"S": INPROGRESS},
                    "messageId": {"S": message_id},
                    "inProgressUntil": {"N": str(now + self._in_progress)},
                    "expiresAt": {"N": str(now + self._ttl)},
                },
                # New, or a stale claim left by a crash, or a record past its TTL not yet swept.
                ConditionExpression=(
                    "attribute_not_exists(#k) OR #e < :now OR (#s = :inprogress AND #u < :now)"
                ),
                ExpressionAttributeNames={
                    "#k": "key",
                    "#e": "expiresAt",
                    "#s": "status",
                    "#u": "inProgressUntil",
                },
                ExpressionAttributeValues={":now": {"N": str(now)}, ":inprogress": {"S": INPROGRESS}},
            )
            return Claim(ClaimState.NEW, message_id)
        except self._ddb.exceptions.ConditionalCheckFailedException:
            pass
        item = self._call("get_item", Key={"key": {"S": key}}, ConsistentRead=True).get("Item")
        if item is None:  # released between our put and get: the caller may simply retry
            return Claim(ClaimState.IN_PROGRESS, message_id)
        state = ClaimState.DUPLICATE if item["status"]["S"] == COMPLETED else ClaimState.IN_PROGRESS
        return Claim(state, item["messageId"]["S"])

    def complete(self, key: str, message_id: str) -> None:
        self._call(
            "update_item",
            Key={"key": {"S": key}},
            UpdateExpression="SET #s = :completed",
            ConditionExpression="#m = :id",
            ExpressionAttributeNames={"#s": "status", "#m": "messageId"},
            ExpressionAttributeValues={":completed": {"S": COMPLETED}, ":id": {"S": message_id}},
        )

    def release(self, key: str, message_id: str) -> None:
        with contextlib.suppress(self._ddb.exceptions.ConditionalCheckFailedException):
            self._call(
                "delete_item",
                Key={"key": {"S": key}},
                ConditionExpression="#m = :id AND #s = :inprogress",
                ExpressionAttributeNames={"#m": "messageId", "#s": "status"},
                ExpressionAttributeValues={":id": {"S": message_id}, ":inprogress": {"S": INPROGRESS}},
            )

    def control_id_reused(self, source: str, control_id: str, digest: str, message_id: str) -> bool:
        key = f"ctl#{source}#{control_id}"
        now = int(time.time())
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
    def __init__(self, ttl_seconds: int = 3600, in_progress_seconds: int = 60) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.unavailable = False
        self._ttl = ttl_seconds
        self._in_progress = in_progress_seconds

    def _check(self) -> None:
        if self.unavailable:
            raise DedupUnavailable("dedup table unavailable: simulated")

    def claim(self, key: str, message_id: str) -> Claim:
        self._check()
        now = time.time()
        record = self.records.get(key)
        if (
            record is None
            or record["expiresAt"] < now
            or (record["status"] == INPROGRESS and record["inProgressUntil"] < now)
        ):
            self.records[key] = {
                "status": INPROGRESS,
                "messageId": message_id,
                "inProgressUntil": now + self._in_progress,
                "expiresAt": now + self._ttl,
            }
            return Claim(ClaimState.NEW, message_id)
        state = ClaimState.DUPLICATE if record["status"] == COMPLETED else ClaimState.IN_PROGRESS
        return Claim(state, record["messageId"])

    def complete(self, key: str, message_id: str) -> None:
        self._check()
        if self.records.get(key, {}).get("messageId") == message_id:
            self.records[key]["status"] = COMPLETED

    def release(self, key: str, message_id: str) -> None:
        self._check()
        record = self.records.get(key)
        if record and record["messageId"] == message_id and record["status"] == INPROGRESS:
            del self.records[key]

    def control_id_reused(self, source: str, control_id: str, digest: str, message_id: str) -> bool:
        self._check()
        key = f"ctl#{source}#{control_id}"
        record = self.records.setdefault(key, {"digest": digest, "messageId": message_id})
        return bool(record["digest"] != digest)
