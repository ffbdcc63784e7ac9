"""Self-managed deduplication (Powertools-style idempotency records in DynamoDB).

A message is a duplicate when the same source sent the same normalized content (SHA-256 digest)
before. The claim lives first in the record of the message's control id (``ctl#source#MSH-10``,
holding the digest): one conditional put decides new, duplicate or in progress, and a conflict
returns the record in the same round trip. Only a control id reused with different content needs a
second record, keyed by the content (``source#digest``); that message is flagged ``controlIdReused``.
A message without a control id (empty MSH-10) is claimed in its content record directly.

A claim is INPROGRESS while the gateway publishes, COMPLETED once the message is in the hub. It names
the message id and receipt time the message was given, so that whatever happens to the request
holding the claim, the message keeps that identity:

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol


class DedupUnavailable(RuntimeError):
    pass


class ClaimState(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"
    IN_PROGRESS = "in_progress"


@dataclass(frozen=True)
class Fingerprint:
    """What identifies a message for deduplication."""

    source: str
    control_id: str
    digest: str

    @property
    def control_key(self) -> str:
        return f"ctl#{self.source}#{self.control_id}"

    @property
    def content_key(self) -> str:
        return f"{self.source}#{self.digest}"


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    message_id: str
    received_at: str
    key: str = ""  # the record that holds it
    digest: str = ""
    # True when this claim took over one that was abandoned or left by a crash: the message may
    # already be in the hub under this id.
    resumed: bool = False
    # True when the control id was seen before with different content.
    control_id_reused: bool = False
    # The batch body the message came in, if any: a retried split recognises its own messages.
    batch_id: str = ""


class DedupStore(Protocol):
    def claim(
        self, fingerprint: Fingerprint, message_id: str, received_at: str, batch_id: str = ""
    ) -> Claim: ...

    def complete(self, claim: Claim) -> None: ...

    def abandon(self, claim: Claim) -> None: ...


INPROGRESS, COMPLETED = "INPROGRESS", "COMPLETED"


def _holder(record: dict[str, Any], claim: Claim) -> Claim:
    """The claim a record stands for, seen from a request that wanted `claim`'s key."""
    return replace(
        claim,
        state=ClaimState.DUPLICATE if record["status"] == COMPLETED else ClaimState.IN_PROGRESS,
        message_id=record["messageId"],
        received_at=record["receivedAt"],
        control_id_reused=record["reused"],
        batch_id=record.get("batchId", ""),
    )


PutNew = Callable[[Claim, int], "dict[str, Any] | None"]
TakeOver = Callable[[Claim, int, int], Claim]


def _claim(
    put_new: PutNew,
    take_over: TakeOver,
    fingerprint: Fingerprint,
    message_id: str,
    received_at: str,
    batch_id: str,
    now: int,
) -> Claim:
    """The claim protocol, whatever stores the records: `put_new` writes a claim unless the key is
    held (then returns the holding record), `take_over` replaces a stale claim (or loses the race)."""
    mine = Claim(
        ClaimState.NEW,
        message_id,
        received_at,
        fingerprint.control_key,
        fingerprint.digest,
        batch_id=batch_id,
    )
    if not fingerprint.control_id:
        # No MSH-10: nothing to key by but the content. A shared `ctl#source#` record would make every
        # such message look like a reused control id.
        mine = replace(mine, key=fingerprint.content_key)
    held = put_new(mine, now)
    if held is not None and fingerprint.control_id and held["digest"] != fingerprint.digest:
        # The control id was used before for other content: this message's own record is keyed by
        # its content.
        mine = replace(mine, key=fingerprint.content_key, control_id_reused=True)
        held = put_new(mine, now)
    if held is None:
        return mine
    holder = _holder(held, mine)
    if holder.state is ClaimState.IN_PROGRESS and held["inProgressUntil"] < now:
        return take_over(holder, held["inProgressUntil"], now)
    return holder


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
        if "RequestItems" not in kwargs:  # batch calls name their tables inside
            kwargs["TableName"] = self._table
        try:
            return getattr(self._ddb, operation)(**kwargs)
        except self._ddb.exceptions.ConditionalCheckFailedException:
            raise
        except Exception as exc:
            raise DedupUnavailable(f"dedup table unavailable: {exc.__class__.__name__}") from exc

    def _item(
        self, claim: Claim, status: str, now: int, in_progress_until: int | None = None
    ) -> dict[str, Any]:
        until = now + self._in_progress if in_progress_until is None else in_progress_until
        return {
            "key": {"S": claim.key},
            "status": {"S": status},
            "digest": {"S": claim.digest},
            "messageId": {"S": claim.message_id},
            "receivedAt": {"S": claim.received_at},
            "reused": {"BOOL": claim.control_id_reused},
            "batchId": {"S": claim.batch_id},
            "inProgressUntil": {"N": str(until)},
            "expiresAt": {"N": str(now + self._ttl)},
        }

    def claim(self, fingerprint: Fingerprint, message_id: str, received_at: str, batch_id: str = "") -> Claim:
        now = int(self._clock())
        return _claim(self._put_new, self._take_over, fingerprint, message_id, received_at, batch_id, now)

    def _put_new(self, claim: Claim, now: int) -> dict[str, Any] | None:
        """None when the key is now ours; else the record that holds it (read in the same round trip)."""
        try:
            self._call(
                "put_item",
                Item=self._item(claim, INPROGRESS, now),
                # New, or a record past its TTL that DynamoDB has not swept yet.
                ConditionExpression="attribute_not_exists(#k) OR #e < :now",
                ExpressionAttributeNames={"#k": "key", "#e": "expiresAt"},
                ExpressionAttributeValues={":now": {"N": str(now)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return None
        except self._ddb.exceptions.ConditionalCheckFailedException as exc:
            item = exc.response.get("Item")
        if item is None:  # an emulator that does not return the old item
            item = self._call("get_item", Key={"key": {"S": claim.key}}, ConsistentRead=True).get("Item")
        if item is None:  # gone between the two calls: answer "in progress", the retry will claim it
            return {"status": INPROGRESS, "digest": claim.digest, "messageId": claim.message_id,
                    "receivedAt": claim.received_at, "reused": False, "inProgressUntil": now + 1}  # fmt: skip
        return {
            # Control-id records written before claims moved into them carry no status: such a message
            # was accepted.
            "status": item.get("status", {}).get("S", COMPLETED),
            "digest": item.get("digest", {}).get("S", ""),
            "messageId": item["messageId"]["S"],
            "receivedAt": item.get("receivedAt", {}).get("S", claim.received_at),
            "reused": item.get("reused", {}).get("BOOL", False),
            "batchId": item.get("batchId", {}).get("S", ""),
            "inProgressUntil": int(item.get("inProgressUntil", {}).get("N", "0")),
        }

    def _take_over(self, stale: Claim, stale_until: int, now: int) -> Claim:
        taken = replace(stale, state=ClaimState.NEW, resumed=True)
        try:
            self._call(
                "put_item",
                Item=self._item(taken, INPROGRESS, now),
                # Exactly this stale claim: of two retries racing for it, one wins.
                ConditionExpression="#s = :inprogress AND #u = :until AND #m = :id",
                ExpressionAttributeNames={"#s": "status", "#u": "inProgressUntil", "#m": "messageId"},
                ExpressionAttributeValues={
                    ":inprogress": {"S": INPROGRESS},
                    ":until": {"N": str(stale_until)},
                    ":id": {"S": stale.message_id},
                },
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return stale
        return taken

    def complete(self, claim: Claim) -> None:
        # A conditional put of the whole record: a third of the emulator's cost of an UpdateItem.
        self._call(
            "put_item",
            Item=self._item(claim, COMPLETED, int(self._clock())),
            ConditionExpression="#m = :id",
            ExpressionAttributeNames={"#m": "messageId"},
            ExpressionAttributeValues={":id": {"S": claim.message_id}},
        )

    def complete_many(self, claims: Sequence[Claim]) -> list[Claim]:
        """BatchWriteItem (≤25): no condition is needed, a claim keeps its message id for life (a
        takeover reuses it), so a late completion can only say what is true. Returns the unwritten."""
        now = int(self._clock())
        by_key = {claim.key: claim for claim in claims}  # one write per record, the latest claim
        requests = [{"PutRequest": {"Item": self._item(c, COMPLETED, now)}} for c in by_key.values()]
        for attempt in range(3):
            response = self._call("batch_write_item", RequestItems={self._table: requests})
            requests = response.get("UnprocessedItems", {}).get(self._table, [])
            if not requests:
                return []
            time.sleep(0.05 * 2**attempt)
        unwritten = {r["PutRequest"]["Item"]["key"]["S"] for r in requests}
        return [c for c in claims if c.key in unwritten]

    def abandon(self, claim: Claim) -> None:
        """The publish failed (it may still have reached the hub): let the next retry take over now."""
        now = int(self._clock())
        # A failed condition: completed by a racing retry, or taken over; nothing to abandon.
        with contextlib.suppress(self._ddb.exceptions.ConditionalCheckFailedException):
            self._call(
                "put_item",
                Item=self._item(claim, INPROGRESS, now, in_progress_until=now - 1),
                ConditionExpression="#m = :id AND #s = :inprogress",
                ExpressionAttributeNames={"#m": "messageId", "#s": "status"},
                ExpressionAttributeValues={":id": {"S": claim.message_id}, ":inprogress": {"S": INPROGRESS}},
            )
