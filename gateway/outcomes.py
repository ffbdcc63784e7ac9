"""What the ingest use case answers, as values: the front door's JSON and the ACK are built from them.

``to_dict()`` is the JSON answer (HTTP 202 body, batch report); key order included, it is what
clients have always received.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gateway.problems import Problem


class Status(StrEnum):
    ACCEPTED = "accepted"  # in the hub
    DUPLICATE = "duplicate"  # already in the hub (or earlier in the same batch)
    REJECTED = "rejected"  # unreadable: the sender must fix it


@dataclass(frozen=True)
class MessageSummary:
    """What the lake knows of a message from its MSH, under the id it was accepted as."""

    id: str
    message_type: str
    control_id: str
    source: str
    flags: tuple[str, ...] = ()

    def fields(self) -> dict[str, Any]:
        """The summary without its id."""
        answer: dict[str, Any] = {
            "messageType": self.message_type,
            "controlId": self.control_id,
            "source": self.source,
        }
        if self.flags:
            answer["flags"] = list(self.flags)
        return answer

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.fields()}


@dataclass(frozen=True)
class IngestOutcome:
    """One message accepted into the hub by this request."""

    summary: MessageSummary
    control_id_reused: bool

    @property
    def id(self) -> str:
        return self.summary.id

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.summary.id,
            "status": Status.ACCEPTED.value,
            "duplicate": False,
            **self.summary.fields(),
            "controlIdReused": self.control_id_reused,
        }


@dataclass(frozen=True)
class MemberOutcome:
    """One message of a batch: accepted now (``IngestOutcome``), known already (``MessageSummary``:
    accepted by an earlier attempt at this batch, or a duplicate of an earlier member), or answered
    by a ``Problem`` (409 duplicate of a stored message, or rejected)."""

    index: int
    status: Status
    answer: IngestOutcome | MessageSummary | Problem

    def to_dict(self) -> dict[str, Any]:
        answer = self.answer
        if isinstance(answer, IngestOutcome):
            return {"index": self.index, **answer.to_dict()}
        if isinstance(answer, Problem):
            member = {"index": self.index, **answer.details, "status": self.status.value}
            if self.status is Status.REJECTED:
                member["error"] = answer.body()
            return member
        return {
            "index": self.index,
            **answer.to_dict(),
            "status": self.status.value,
            "duplicate": self.status is Status.DUPLICATE,
        }


@dataclass(frozen=True)
class BatchOutcome:
    """A batch accepted message by message in this request (or the splitter's final report)."""

    id: str
    members: tuple[MemberOutcome, ...]
    declared_counts: dict[str, int]
    problems: tuple[dict[str, Any], ...]

    def count(self, status: Status) -> int:
        return sum(1 for m in self.members if m.status is status)

    @property
    def rejected(self) -> tuple[MemberOutcome, ...]:
        return tuple(m for m in self.members if m.status is Status.REJECTED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": {
                "id": self.id,
                "messages": len(self.members),
                **{s.value: self.count(s) for s in Status},
                "declaredCounts": self.declared_counts,
                "problems": list(self.problems),
            },
            "messages": [m.to_dict() for m in self.members],
        }


@dataclass(frozen=True)
class BatchProcessing:
    """A large batch in the hub as a whole; the batch splitter reports its messages' outcomes later."""

    id: str
    messages: int
    declared_counts: dict[str, int]
    problems: Sequence[dict[str, Any]]

    @property
    def location(self) -> str:
        return f"/v1/batches/{self.id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": {
                "id": self.id,
                "status": "processing",
                "messages": self.messages,
                "declaredCounts": self.declared_counts,
                "problems": list(self.problems),
                "location": self.location,
            }
        }


IngestResult = IngestOutcome | BatchOutcome | BatchProcessing  # what ingest() returns
