"""GET /v1/messages/{id}/fhir: the Bundle as the lake stored it, or a 404 that says why there is none."""

from __future__ import annotations

import pytest

from tests.unit.test_read_abac import Stack

BUNDLE = b'{"resourceType":"Bundle","type":"transaction"}'


@pytest.fixture
def stack() -> Stack:
    stack = Stack()
    stack.reader.objects["s3://lake/fhir/M1.json"] = BUNDLE
    return stack


def test_it_returns_the_stored_bundle_as_fhir_json(stack: Stack) -> None:
    response = stack.get("/v1/messages/M1/fhir", write="", read="hospital-b")
    assert response.status_code == 200 and response.content == BUNDLE
    assert response.headers["content-type"].startswith("application/fhir+json")


def test_no_bundle_yet_is_a_404_saying_so(stack: Stack) -> None:
    del stack.reader.items["M1"]["fhir"]
    response = stack.get("/v1/messages/M1/fhir", write="", read="hospital-b")
    assert response.status_code == 404
    assert "no FHIR bundle: not converted yet (status: parsed)" in response.text


def test_a_failed_conversion_is_a_404_naming_the_reason(stack: Stack) -> None:
    del stack.reader.items["M1"]["fhir"]
    stack.reader.items["M1"]["fhirError"] = {"stage": "fhir", "reason": "PID-3 (patient identifier) is empty"}
    response = stack.get("/v1/messages/M1/fhir", write="", read="hospital-b")
    assert (
        response.status_code == 404
        and "conversion failed: PID-3 (patient identifier) is empty" in response.text
    )


def test_a_type_it_does_not_map_is_a_404_saying_so(stack: Stack) -> None:
    stack.reader.items["M1"]["messageType"] = "SIU^S12"
    response = stack.get("/v1/messages/M1/fhir", write="", read="hospital-b")
    assert response.status_code == 404
    assert "of type 'SIU^S12', which is not converted to FHIR" in response.text
