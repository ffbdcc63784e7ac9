"""Make moto's SQS cost independent of queue depth (see docs/decisions/0008).

moto 5.x checks each received message against the queue's retention period by calling
`get_queue_attributes(queue, ["MessageRetentionPeriod"])`, which builds the full `Queue.attributes`
dict three times; each build counts visible, delayed and in-flight messages with a pass over the
whole queue, and each message's `visible`/`delayed` check reads the clock through datetime
arithmetic. ReceiveMessage(10) thus costs O(10 × 9 × depth) clock reads: 2 s at depth 2,000.

Two narrow patches, both keeping moto's results identical:

- `SQSBackend.is_message_valid_based_on_retention_period` reads `queue.message_retention_period`
  (the value `get_queue_attributes` would have returned) instead of rebuilding every attribute.
- `moto.sqs.models.unix_time` / `unix_time_millis` (module globals, so SQS only) use `time.time()`
  instead of `datetime.now(UTC) - datetime(1970)`: the same number, ~10× cheaper. Server mode has
  no frozen clock, so nothing relies on the datetime path there.

Each patch checks that the function it replaces is still the one it was written against (source
fingerprint), so a moto upgrade that changes it stops the emulator at start with a clear message
instead of silently running a stale replacement.
"""

from __future__ import annotations

import hashlib
import inspect
import time
from typing import Any

import moto.core.utils as moto_utils
import moto.sqs.models as sqs_models


class IncompatibleMotoError(RuntimeError):
    """The installed moto no longer matches what a patch was written against."""


# sha256 of inspect.getsource(...) in moto 5.2.5, first 16 hex digits.
RETENTION_CHECK_FINGERPRINT = "cca23b94a5f3af9d"


def source_fingerprint(function: Any) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def unix_time(dt: Any = None) -> float:
    if dt is not None:
        return float(moto_utils.unix_time(dt))
    return time.time()


def unix_time_millis(dt: Any = None) -> float:
    if dt is not None:
        return float(moto_utils.unix_time_millis(dt))
    return time.time() * 1000.0


def is_message_valid_based_on_retention_period(
    self: sqs_models.SQSBackend, queue_name: str, message: sqs_models.Message
) -> bool:
    queue = self.get_queue(queue_name)
    retain_until = queue.message_retention_period + message.sent_timestamp / 1000  # type: ignore[attr-defined,operator]
    return bool(retain_until > unix_time())


def check_sqs_patch_targets() -> None:
    """Raises IncompatibleMotoError unless moto's SQS code is the code the patches were written for."""
    original = sqs_models.SQSBackend.is_message_valid_based_on_retention_period
    if original is is_message_valid_based_on_retention_period:
        return
    found = source_fingerprint(original)
    if found != RETENTION_CHECK_FINGERPRINT:
        raise IncompatibleMotoError(
            "moto changed SQSBackend.is_message_valid_based_on_retention_period "
            f"(fingerprint {found}, patch written for {RETENTION_CHECK_FINGERPRINT}): re-check "
            "hl7lake/emulator_server/sqs_patches.py against this moto, then update the fingerprint"
        )
    clocks = (("unix_time", moto_utils.unix_time), ("unix_time_millis", moto_utils.unix_time_millis))
    for name, expected in clocks:
        if getattr(sqs_models, name, None) is not expected:
            raise IncompatibleMotoError(
                f"moto.sqs.models.{name} is no longer moto.core.utils.{name}: re-check "
                "hl7lake/emulator_server/sqs_patches.py against this moto"
            )
    if "MessageRetentionPeriod" not in sqs_models.Queue.BASE_ATTRIBUTES:
        raise IncompatibleMotoError("moto's SQS Queue no longer has a MessageRetentionPeriod attribute")


def apply_sqs_patches() -> None:
    check_sqs_patch_targets()
    # setattr: these are moto.sqs.models' module globals, which its type stubs do not export
    setattr(sqs_models, "unix_time", unix_time)  # noqa: B010
    setattr(sqs_models, "unix_time_millis", unix_time_millis)  # noqa: B010
    sqs_models.SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )
