"""What a subscriber that turns each event into one result event does with a whole receive: derive
every result (with its step in the message's path), publish them in as few SNS calls as possible,
and answer one outcome per event. Shared by the ER7 staging and FHIR workers."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from hub import steps
from hub.events import Envelope, Event, utc_timestamp
from hub.publisher import Publisher

# A failed event is an envelope without payload plus its error: far below SNS's 256 KB, always.
MAX_ERROR_BYTES = 2048
ERROR_KEYS = ("reason", "segment", "segmentIndex", "field")


def publish_results(
    publisher: Publisher,
    envelopes: Sequence[Envelope],
    is_ours: Callable[[Envelope], bool],
    result_of: Callable[[Envelope, str], Envelope],
) -> list[BaseException | None]:
    """`result_of(envelope, started_at)` for each envelope `is_ours` accepts (the others are left
    alone: success), then one `publish_batch`. An outcome is None when the result is in the hub,
    else the error (the consumer retries that event)."""
    outcomes: list[BaseException | None] = [None] * len(envelopes)
    results: list[tuple[int, Envelope]] = []
    for index, envelope in enumerate(envelopes):
        if not is_ours(envelope):
            continue
        try:
            results.append((index, result_of(envelope, utc_timestamp())))
        except Exception as exc:  # the payload could not be fetched (claim-check bucket down)
            outcomes[index] = exc
    published = publisher.publish_batch([result for _, result in results])
    for (index, _), outcome in zip(results, published, strict=True):
        outcomes[index] = outcome
    return outcomes


def with_step(service: str, envelope: Envelope, result: Envelope, success: str, started_at: str) -> Envelope:
    """The result event carrying the message's path so far and this handling as its last step
    (`success` for a result that is no `message.failed`)."""
    outcome = "failed" if result.event is Event.FAILED else success
    reason = (result.error or {}).get("reason") if result.error else None
    return steps.with_steps(result, steps.step(service, envelope, outcome, started_at, reason))


def bounded_error(error: dict[str, Any], stage: str | None = None) -> dict[str, Any]:
    """Only the error's known keys (and `stage` when given); a report that is still too large keeps
    its location, not its reason: the last guard before the hub."""
    kept = {k: error[k] for k in ERROR_KEYS if k in error}
    if stage is not None:
        kept = {"stage": stage, **kept}
    if len(json.dumps(kept, ensure_ascii=False).encode()) <= MAX_ERROR_BYTES:
        return kept
    too_large: dict[str, Any] = {"stage": stage} if stage is not None else {}
    return {
        **too_large,
        "reason": "error report too large to publish",
        "segmentIndex": kept.get("segmentIndex"),
    }
