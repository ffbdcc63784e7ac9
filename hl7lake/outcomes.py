"""What `hl7lake send` counts: accepted, duplicate and rejected messages, rejections grouped by reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

OUTCOMES = ("accepted", "duplicate", "rejected")


@dataclass(frozen=True)
class FileOutcome:
    """One sent file: how many of its messages ended how, and why each rejected one was."""

    path: str
    counts: Counter[str]
    reasons: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return ", ".join(f"{self.counts[o]} {o}" for o in OUTCOMES if self.counts[o]) or "empty"


def single(path: str, outcome: str, reason: str | None = None) -> FileOutcome:
    return FileOutcome(path, Counter({outcome: 1}), (reason,) if reason else ())


def from_accepted_body(path: str, body: dict[str, Any]) -> FileOutcome:
    """A 202 answer: one message, a batch answered message by message, or a large batch split later."""
    batch = body.get("batch")
    if not isinstance(batch, dict):
        return single(path, "accepted")
    if batch.get("status") == "processing":  # accepted whole; its messages' outcomes come later
        return FileOutcome(path, Counter({"accepted": int(batch.get("messages", 0))}))
    counts: Counter[str] = Counter()
    reasons: list[str] = []
    for member in body.get("messages", []):
        status = member.get("status", "rejected")
        counts[status] += 1
        if status == "rejected":
            error = member.get("error") or {}
            reasons.append(f"batch member {error.get('error', '?')}: {error.get('message', '')}")
    return FileOutcome(path, counts, tuple(reasons))


@dataclass
class Tally:
    counts: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    example: dict[str, str] = field(default_factory=dict)  # a file per reason, to look at
    files: int = 0

    def add(self, outcome: FileOutcome) -> None:
        self.files += 1
        self.counts.update(outcome.counts)
        for reason in outcome.reasons:
            self.reasons[reason] += 1
            self.example.setdefault(reason, outcome.path)

    @property
    def failed(self) -> bool:
        return self.counts["rejected"] > 0
