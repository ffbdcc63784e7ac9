"""Counts what the front doors answer (hub.metrics INGESTED), from the typed outcomes: accepted,
duplicate, rejected (the sender's error) and refused (busy or a dependency down: retry)."""

from __future__ import annotations

import re

from gateway.outcomes import BatchOutcome, BatchProcessing, IngestOutcome, IngestResult, MemberOutcome, Status
from gateway.problems import Problem
from hub.metrics import INGESTED

# A message type as a label only when it looks like one (MSH-9 is the sender's text: bounded labels).
_MESSAGE_TYPE = re.compile(r"[A-Z0-9]{3}(\^[A-Z0-9]{3})?")


def _type_label(message_type: str | None) -> str:
    return message_type if message_type and _MESSAGE_TYPE.fullmatch(message_type) else "other"


def _problem_outcome(problem: Problem) -> str:
    if problem.status == 409:
        return Status.DUPLICATE.value
    return Status.REJECTED.value if 400 <= problem.status < 500 else "refused"


def count_problem(door: str, problem: Problem, message_type: str | None = None) -> None:
    INGESTED.labels(door, _problem_outcome(problem), problem.code, _type_label(message_type)).inc()


def count_members(door: str, members: list[MemberOutcome] | tuple[MemberOutcome, ...]) -> None:
    for member in members:
        answer = member.answer
        if isinstance(answer, Problem):
            count_problem(door, answer, str(answer.details.get("messageType") or ""))
        else:
            summary = answer.summary if isinstance(answer, IngestOutcome) else answer
            INGESTED.labels(door, member.status.value, "", _type_label(summary.message_type)).inc()


def count_result(door: str, result: IngestResult) -> None:
    if isinstance(result, IngestOutcome):
        INGESTED.labels(door, Status.ACCEPTED.value, "", _type_label(result.summary.message_type)).inc()
    elif isinstance(result, BatchOutcome):
        count_members(door, result.members)
    elif isinstance(result, BatchProcessing):  # counted message by message by the batch splitter
        pass
