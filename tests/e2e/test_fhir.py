"""End to end: the FHIR R4 subscriber under `hl7lake up`. Corpus messages in over HTTP, each one's
Bundle read back via GET /v1/messages/{id}/fhir, its Patient checked against the parsed PID."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CORPUS
from tests.e2e.running import RunningStack, running_stack

pytestmark = pytest.mark.e2e

ER7 = {"Content-Type": "application/hl7-v2"}
MESSAGES = ("008-ORU_R01-2.5.1.hl7", "006-ADT_A01-2.3.hl7")
GENDERS = {"M": "male", "F": "female", "O": "other", "U": "unknown"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with running_stack(tmp_path_factory.mktemp("run")) as running:
        yield running


def wait_bundle(client: httpx.Client, mid: str, headers: dict[str, str], timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    response = None
    while time.monotonic() < deadline:
        response = client.get(f"/v1/messages/{mid}/fhir", headers=headers)
        if response.status_code == 200:
            return response.json()
        time.sleep(0.2)
    raise AssertionError(f"no FHIR bundle for {mid} in time: {response.text if response else ''}")


def expected_patient(pid: dict[str, str]) -> dict[str, Any]:
    born = pid["7"][:8]
    return {
        "identifier": pid["3.1"],
        "family": pid["5.1"],
        "given": pid["5.2"],
        "birthDate": f"{born[:4]}-{born[4:6]}-{born[6:8]}",
        "gender": GENDERS[pid["8"]],
    }


@pytest.mark.parametrize("name", MESSAGES)
def test_a_mapped_message_reads_back_as_a_fhir_bundle(
    stack: RunningStack, corpus_dir: Path, name: str
) -> None:
    sender = stack.token("sender@hospital-a.example")
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        response = client.post(
            "/v1/messages", content=(CORPUS / "messages" / name).read_bytes(), headers={**ER7, **sender}
        )
        assert response.status_code == 202, response.text
        mid = response.json()["id"]
        bundle = wait_bundle(client, mid, sender)
        document = client.get(f"/v1/messages/{mid}/parsed", headers=sender).json()
        item = client.get(f"/v1/messages/{mid}", headers=sender).json()
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "transaction")
    assert item["status"] == "parsed"  # the conversion leaves the status alone
    pid = next(s["fields"] for s in document["segments"] if s["id"] == "PID")
    patients = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert patients, bundle
    patient = patients[0]
    got = {
        "identifier": patient["identifier"][0]["value"],
        "family": patient["name"][0]["family"],
        "given": patient["name"][0]["given"][0],
        "birthDate": patient["birthDate"],
        "gender": patient["gender"],
    }
    assert got == expected_patient(pid)


def test_a_type_it_does_not_map_has_no_bundle(stack: RunningStack, corpus_dir: Path) -> None:
    sender = stack.token("sender@hospital-a.example")
    body = (CORPUS / "messages" / "012-SIU_S12-2.8.hl7").read_bytes()
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        response = client.post("/v1/messages", content=body, headers={**ER7, **sender})
        assert response.status_code == 202, response.text
        mid = response.json()["id"]
        deadline = time.monotonic() + 90
        while client.get(f"/v1/messages/{mid}", headers=sender).json().get("status") != "parsed":
            assert time.monotonic() < deadline, f"message {mid} not parsed in time"
            time.sleep(0.2)
        answer = client.get(f"/v1/messages/{mid}/fhir", headers=sender)
    assert answer.status_code == 404 and "not converted to FHIR" in answer.text


def test_each_numeric_result_reads_back_as_an_observation_with_its_code_value_and_unit(
    stack: RunningStack, corpus_dir: Path
) -> None:
    sender = stack.token("sender@hospital-a.example")
    body = (CORPUS / "messages" / "008-ORU_R01-2.5.1.hl7").read_bytes()
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        response = client.post("/v1/messages", content=body, headers={**ER7, **sender})
        assert response.status_code in (202, 409), response.text  # 409: sent by the test above
        answer = response.json()
        mid = answer["id"]  # a 409 names the id it was accepted under
        bundle = wait_bundle(client, mid, sender)
        document = client.get(f"/v1/messages/{mid}/parsed", headers=sender).json()
    numeric = [s["fields"] for s in document["segments"] if s["id"] == "OBX" and s["fields"].get("2") == "NM"]
    observations = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert len(numeric) >= 5
    by_code = {o["code"]["coding"][0]["code"]: o for o in observations}
    for obx in numeric:
        observation = by_code[obx["3.1"]]
        assert observation["code"]["coding"][0]["system"] == "http://loinc.org"  # OBX-3.3 LN
        quantity = observation["valueQuantity"]
        assert quantity["value"] == float(obx["5"])
        assert (quantity["code"], quantity["system"]) == (obx["6.1"], "http://unitsofmeasure.org")
