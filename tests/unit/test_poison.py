"""Poison messages: a failed event fits SNS and quotes nothing of the message; SNS refusals are permanent."""

from __future__ import annotations

import json
import random
import string
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from hub.er7 import Er7Error
from hub.er7.errors import MAX_REASON_CHARS, value_free
from hub.events import Envelope, Event
from hub.publisher import HubRejected, HubUnavailable, SnsPublisher
from hub.results import MAX_ERROR_BYTES, bounded_error
from lake.writer import LakeWriter
from tests.factories import received_envelope
from tests.fakes.hub import MemoryHub, MemoryPayloadStore
from tests.fakes.lake import MemoryCatalog, MemoryObjectStore
from workers.er7_staging.handler import Er7StagingHandler

SNS_MAX_BYTES = 256 * 1024
WINDOW = 6  # no run of this many characters of the bad value may reach the error
MSH = "MSH|^~\\&|LAB|HOSP|LAKE|AWS|20260101||ADT^A01|C1|P|2.5\r"


def patient_text(size: int, seed: int) -> str:
    """Text that looks like a long note (letters and blanks), distinct enough to spot any piece of it."""
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters + "  ") for _ in range(size))


def leaked(value: str, text: str) -> list[str]:
    return [text[i : i + WINDOW] for i in range(len(text) - WINDOW + 1) if text[i : i + WINDOW] in value]


# bad field value -> what today's parser quoted from it
BAD_FIELDS = {
    "hex escape not valid text, 300 KB": lambda v: "\\X" + "FF" * (len(v) // 2) + "\\",
    "line break inside a value": lambda v: "X\r" + v.replace(" ", "^"),
}
SIZES = {"hex escape not valid text, 300 KB": 300_000}
# stray escape characters that the parser once refused, quoting them: now kept, flagged escape-kept
STRAY_FIELDS = {
    "unterminated escape, 300 KB": lambda v: v + "\\",
    "unknown escape, 100 KB": lambda v: "\\" + v + "\\",
    "invalid hex escape, 100 KB": lambda v: "\\X" + v + "\\",
    "empty escape sequence": lambda v: v + "\\\\" + v,
}
STRAY_SIZES = {"unterminated escape, 300 KB": 300_000}


def failed_event(bad_field: str) -> tuple[Envelope, MemoryHub]:
    hub = MemoryHub()
    message = f"{MSH}PID|1||MRN1||{bad_field}||19700101|M\r"
    Er7StagingHandler(hub, hub.payloads).handle(received_envelope(message))
    [event] = hub.published
    assert event.event is Event.FAILED
    return event, hub


@pytest.mark.parametrize("case", list(BAD_FIELDS))
def test_failed_event_fits_sns_and_quotes_nothing_of_the_value(case: str) -> None:
    value = patient_text(SIZES.get(case, 100_000), seed=len(case))
    event, _ = failed_event(BAD_FIELDS[case](value))

    body = event.to_json().encode()
    assert len(body) < SNS_MAX_BYTES
    assert event.payload is None and event.payload_ref is None
    error_text = json.dumps(event.error, ensure_ascii=False)
    assert len(error_text.encode()) <= MAX_ERROR_BYTES
    assert event.error is not None and event.error["segmentIndex"] in (2, 3)  # the break starts segment 3
    assert leaked(value, error_text) == []


@pytest.mark.parametrize("case", list(STRAY_FIELDS))
def test_stray_escape_is_kept_and_its_finding_quotes_nothing_of_the_value(case: str) -> None:
    value = patient_text(STRAY_SIZES.get(case, 100_000), seed=len(case))
    hub = MemoryHub()
    message = f"{MSH}PID|1||MRN1||{STRAY_FIELDS[case](value)}||19700101|M\r"
    Er7StagingHandler(hub, hub.payloads).handle(received_envelope(message))
    [event] = hub.published
    assert event.event is Event.PARSED
    findings = event.extra["findings"]
    assert findings == [{"code": "escape-kept", "segment": "PID", "segmentIndex": 2, "field": "PID-5"}]
    catalog = MemoryCatalog()
    LakeWriter(MemoryObjectStore(), catalog, hub.payloads).handle(event)
    entry = catalog.items[event.id]
    assert entry["status"] == "parsed" and entry["findings"] == findings
    assert leaked(value, json.dumps(entry["findings"])) == []


def test_catalog_error_reason_holds_no_patient_value() -> None:
    value = patient_text(100_000, seed=7)
    event, hub = failed_event("\\X" + "FF" * 50_000 + "\\" + value)
    catalog = MemoryCatalog()
    lake = LakeWriter(MemoryObjectStore(), catalog, hub.payloads)
    lake.handle(event)

    entry = catalog.items[event.id]
    assert entry["status"] == "failed"
    assert entry["error"]["field"] == "PID-5"
    assert "hex escape of 100001 characters is not valid utf-8" in entry["error"]["reason"]
    assert leaked(value, json.dumps(entry["error"])) == []


def test_failed_event_measured_size_for_a_300_kb_value() -> None:
    value = patient_text(300_000, seed=1)
    event, _ = failed_event(value + "\\X" + "FF" * 150_000 + "\\")
    assert len(event.to_json().encode()) < 1024  # an envelope without payload plus a short error


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("encoding characters '^~\\\\&' use '^' twice", "encoding characters '^~\\\\&' use '^' twice"),
        ("bad value 'DOE^JOHN^Q'", "bad value <10 chars>"),
        ('bad value "O\'BRIEN, PAT"', "bad value <12 chars>"),
        ("bad value " + "x" * 40, "bad value <40 chars>"),
    ],
)
def test_value_free_keeps_delimiters_and_replaces_values_by_their_length(reason: str, expected: str) -> None:
    assert value_free(reason) == expected


def test_every_reason_is_capped_whoever_built_it() -> None:
    err = Er7Error("word " * 10_000, field="PID-" + "9" * 500)
    assert len(err.reason) <= MAX_REASON_CHARS
    assert err.field is not None and len(err.field) <= 40
    err.reason = "quoted later 'MRN8675309'"  # a reason set after construction still leaves value-free
    assert err.to_dict()["reason"] == "quoted later <10 chars>"
    assert "MRN8675309" not in str(Er7Error("x 'MRN8675309'"))


def test_bounded_error_keeps_known_keys_and_drops_oversized_reports() -> None:
    assert bounded_error({"reason": "r", "field": "PID-5", "raw": "DOE"}) == {"reason": "r", "field": "PID-5"}
    huge = bounded_error({"reason": "x" * 10_000, "segmentIndex": 3})
    assert huge == {"reason": "error report too large to publish", "segmentIndex": 3}


# -- SNS refusals ----------------------------------------------------------------------------------

TOPIC = "arn:aws:sns:us-east-1:000000000000:hl7lake-hub"


def sns_publisher() -> tuple[SnsPublisher, Stubber]:
    sns = boto3.client("sns", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return SnsPublisher(sns, TOPIC, MemoryPayloadStore(), 200 * 1024), Stubber(sns)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("InvalidParameter", "Invalid parameter: Message too long"),
        ("InvalidParameterValue", "Invalid parameter: MessageAttributes"),
        ("ParameterValueInvalid", "bad attribute"),
        ("ValidationError", "Message too long"),
    ],
)
def test_sns_refusal_is_hub_rejected(code: str, message: str) -> None:
    publisher, stub = sns_publisher()
    stub.add_client_error("publish", service_error_code=code, service_message=message, http_status_code=400)
    with stub, pytest.raises(HubRejected, match="hub rejected the event") as info:
        publisher.publish(received_envelope("MSH|^~\\&|A"))
    assert not isinstance(info.value, HubUnavailable)


@pytest.mark.parametrize("code", ["Throttling", "InternalError", "KMSThrottling", "AuthorizationError"])
def test_other_sns_errors_stay_hub_unavailable(code: str) -> None:
    publisher, stub = sns_publisher()
    stub.add_client_error(
        "publish", service_error_code=code, service_message="slow down", http_status_code=500
    )
    with stub, pytest.raises(HubUnavailable):
        publisher.publish(received_envelope("MSH|^~\\&|A"))


class _RaisingSns:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def publish(self, **_: Any) -> dict[str, str]:
        raise self.exc


def test_connection_errors_stay_hub_unavailable() -> None:
    publisher = SnsPublisher(_RaisingSns(ConnectionError("refused")), TOPIC, MemoryPayloadStore(), 1024)
    with pytest.raises(HubUnavailable):
        publisher.publish(received_envelope("MSH|^~\\&|A"))


def test_client_error_from_a_fake_client_is_classified_by_code() -> None:
    error = ClientError({"Error": {"Code": "InvalidParameter", "Message": "x"}}, "Publish")
    publisher = SnsPublisher(_RaisingSns(error), TOPIC, MemoryPayloadStore(), 1024)
    with pytest.raises(HubRejected, match="InvalidParameter"):
        publisher.publish(received_envelope("MSH|^~\\&|A"))
