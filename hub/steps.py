"""A message's path: one step per service that handled one of its events.

A step says who (service, instance: host:pid), what (event, outcome, reason), when (receivedAt: when
the service took the event up, doneAt: when it was done) and on which try (the consumer's count of
handler failures on the message, plus one). Steps travel in the envelope body (`extra["steps"]`,
never a message attribute) and end in the catalog item; both lists are bounded (the last
MAX_STEPS by doneAt), so an envelope stays far below SNS's 256 KB whatever its history.

Tries: the consumer knows them for each message it hands over; it says so with `delivered` around
the handler call, and the handler asks `tries_of(envelope)`.
"""

from __future__ import annotations

import contextvars
import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from hub.events import Envelope, utc_timestamp

STEPS = "steps"
MAX_STEPS = 20
MAX_REASON_CHARS = 256
_FIELDS = ("service", "instance", "event", "outcome", "reason", "receivedAt", "doneAt", "tries")

# (message id, event) → the try this delivery is, for the handler call under way.
_tries: contextvars.ContextVar[Mapping[tuple[str, str], int] | None] = contextvars.ContextVar(
    "tries", default=None
)


@cache
def instance() -> str:
    """This process: host name and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Step:
    service: str
    event: str
    outcome: str
    received_at: str
    done_at: str
    tries: int = 1
    reason: str | None = None
    instance: str = ""

    def to_dict(self) -> dict[str, Any]:
        reason = self.reason
        if reason is not None and len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 1] + "…"
        return {
            "service": self.service,
            "instance": self.instance or instance(),
            "event": self.event,
            "outcome": self.outcome,
            "reason": reason,
            "receivedAt": self.received_at,
            "doneAt": self.done_at,
            "tries": self.tries,
        }


def step(
    service: str, envelope: Envelope, outcome: str, started_at: str, reason: str | None = None
) -> dict[str, Any]:
    """This process's step for ``envelope``'s event, done now."""
    return Step(
        service=service,
        event=envelope.event.value,
        outcome=outcome,
        received_at=started_at,
        done_at=utc_timestamp(),
        tries=tries_of(envelope),
        reason=reason,
    ).to_dict()


def _is_step(value: Any) -> bool:
    return isinstance(value, dict) and all(name in value for name in _FIELDS)


def steps_of(envelope: Envelope) -> list[dict[str, Any]]:
    """The steps an envelope carries (anything malformed left out: the body comes from the wire)."""
    carried = envelope.extra.get(STEPS)
    return [dict(s) for s in carried if _is_step(s)] if isinstance(carried, list) else []


def merged(*lists: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps of every list once each (a step seen twice, e.g. in an envelope and in memory, is
    one), in order of doneAt (then receivedAt), the last MAX_STEPS."""
    unique: dict[tuple[Any, ...], dict[str, Any]] = {}
    for steps in lists:
        for s in steps:
            unique.setdefault(tuple(s.get(name) for name in _FIELDS), s)
    ordered = sorted(unique.values(), key=lambda s: (str(s["doneAt"]), str(s["receivedAt"])))
    return ordered[-MAX_STEPS:]


def with_steps(envelope: Envelope, *added: dict[str, Any]) -> Envelope:
    """``envelope`` carrying its steps and ``added`` (bounded)."""
    return replace(envelope, extra={**envelope.extra, STEPS: merged(steps_of(envelope), added)})


@contextmanager
def delivered(tries: Mapping[tuple[str, str], int]) -> Iterator[None]:
    """The tries of the messages handed to a handler, for the call in the block (see `tries_of`)."""
    token = _tries.set(tries)
    try:
        yield
    finally:
        _tries.reset(token)


def tries_of(envelope: Envelope) -> int:
    """Which try this is for ``envelope`` (1 unless the consumer said otherwise)."""
    return (_tries.get() or {}).get((envelope.id, envelope.event.value), 1)
