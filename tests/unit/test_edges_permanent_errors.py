"""Permanent input errors answer 4xx / AE, transient ones 503 / AR, programming errors 500 / AR 207
(issue 9, section 1), and a request holds at most HL7LAKE_MAX_MESSAGES_PER_REQUEST messages.

Every reproduction goes through the HTTP JSON path and the HL7-ACK path ("HL7 over HTTP", the ACK the
MLLP listener sends), and checks that the answer and the storage agree: AA ⇔ stored, AE/AR ⇔ not stored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from gateway import ack
from gateway.app import create_app
from gateway.auth import Jwks, TokenVerifier
from gateway.config import GatewaySettings
from gateway.ingest import IngestService, MediaType
from gateway.problems import Problem
from gateway.services import GatewayServices
from hub import er7
from hub.er7.header import MAX_CONTROL_ID_CHARS, MAX_MESSAGE_TYPE_CHARS
from hub.events import Event
from tests.fakes.dedup import MemoryDedupStore
from tests.fakes.hub import MemoryHub
from tests.fakes.lake_reader import MemoryLakeReader
from tests.tokens import CLIENT_ID, ISSUER, TokenFactory

HL7_ACCEPT = {"Accept": "application/hl7-v2"}
JSON_ACCEPT: dict[str, str] = {}


def message(
    *,
    msh9: str = "ADT^A01^ADT_A01",
    msh10: str = "CTRL-1",
    msh12: str = "2.5.1",
    msh18: str | None = None,
    pid: str = "DOE^JOHN",
) -> bytes:
    fields = ["MSH", "^~\\&", "LAB", "HOSP_A", "LAKE", "AWS", "20260101120000", "", msh9, msh10, "P", msh12]
    if msh18 is not None:
        fields += ["", "", "", "", "", msh18]
    return ("|".join(fields) + f"\rPID|1||MRN1^^^HOSP_A||{pid}||19700101|M\r").encode("latin-1")


class Boom:
    """A dedup store with a bug: any claim raises a programming error."""

    def __init__(self, store: MemoryDedupStore) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        return 1 // 0


class Stack:
    def __init__(self, *, dedup: Any = None, **settings: Any) -> None:
        self.tokens = TokenFactory()
        self.hub = MemoryHub()
        self.dedup = dedup or MemoryDedupStore()
        self.settings = GatewaySettings(max_body_bytes=1024 * 1024, **settings)
        jwks = Jwks("https://idp.test/jwks.json", http=httpx.Client(transport=self.tokens.jwks_transport()))
        services = GatewayServices(
            settings=self.settings,
            verifier=TokenVerifier(jwks, ISSUER, CLIENT_ID, lambda t: {}),
            ingest=IngestService(self.dedup, self.hub, max_messages=self.settings.max_messages_per_request),
            reader=MemoryLakeReader(),
            readiness={"hub": lambda: None},
        )
        self.client = TestClient(create_app(services), raise_server_exceptions=False)

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        auth = {"Authorization": f"Bearer {self.tokens.token()}", "Content-Type": "application/hl7-v2"}
        return self.client.post("/v1/messages", content=body, headers={**auth, **(headers or {})})

    @property
    def stored(self) -> list[str]:
        return [e.id for e in self.hub.published if e.event in (Event.RECEIVED, Event.BATCH_RECEIVED)]


@pytest.fixture
def stack() -> Iterator[Stack]:
    yield Stack()


def msa(response: httpx.Response) -> list[str]:
    segments = response.content.decode("latin-1").split("\r")
    return next(s for s in segments if s.startswith("MSA")).split("|")


def err(response: httpx.Response) -> list[str]:
    segments = response.content.decode("latin-1").split("\r")
    return next(s for s in segments if s.startswith("ERR")).split("|")


PERMANENT = {
    "msh10_2100": (message(msh10="K" * 2100), "MSH-10"),
    "msh9_300kb": (message(msh9="ADT^A01^" + "X" * 300_000), "MSH-9"),
    "msh18_idna": (message(msh18="idna"), "MSH-18"),
    "msh18_punycode": (message(msh18="punycode"), "MSH-18"),
    "msh18_undefined": (message(msh18="undefined"), "MSH-18"),
    "msh18_nul": (message(msh18="UTF\x00-8"), "MSH-18"),
    "msh18_unicode_escape": (message(msh18="unicode_escape"), "MSH-18"),
    "msh18_base64": (message(msh18="base64"), "MSH-18"),
}


@pytest.mark.parametrize("case", sorted(PERMANENT))
def test_permanent_error_is_400_naming_the_field_and_nothing_is_stored(stack: Stack, case: str) -> None:
    body, field = PERMANENT[case]
    response = stack.post(body)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["error"] == "bad_message" and answer["field"] == field
    assert "Retry-After" not in response.headers
    assert "KKKKKKKK" not in response.text and "XXXXXXXX" not in response.text  # lengths, never values
    assert stack.stored == []


@pytest.mark.parametrize("case", sorted(PERMANENT))
def test_permanent_error_is_ae_over_hl7_and_nothing_is_stored(stack: Stack, case: str) -> None:
    body, field = PERMANENT[case]
    response = stack.post(body, HL7_ACCEPT)
    assert response.status_code == 400, response.text
    assert msa(response)[1] == "AE"
    assert err(response)[2].startswith(f"MSH^1^{field.split('-')[1]}")
    assert stack.stored == []


def test_the_limits_name_field_and_length_not_the_value(stack: Stack) -> None:
    answer = stack.post(message(msh10="K" * 2100)).json()
    assert str(MAX_CONTROL_ID_CHARS) in answer["reason"] and "2100" in answer["reason"]
    answer = stack.post(message(msh9="ADT^A01^" + "X" * 300_000)).json()
    assert str(MAX_MESSAGE_TYPE_CHARS) in answer["reason"]


def test_values_at_the_limits_are_accepted(stack: Stack) -> None:
    msh9 = "ADT^A01^" + "X" * (MAX_MESSAGE_TYPE_CHARS - len("ADT^A01^"))
    response = stack.post(message(msh9=msh9, msh10="K" * MAX_CONTROL_ID_CHARS), HL7_ACCEPT)
    assert response.status_code == 202 and msa(response)[1:3] == ["AA", "K" * MAX_CONTROL_ID_CHARS]
    assert len(stack.stored) == 1


def test_header_reader_refuses_long_keys_for_every_transport() -> None:
    with pytest.raises(er7.Er7Error) as long_id:
        er7.read_header(message(msh10="K" * (MAX_CONTROL_ID_CHARS + 1)).decode().rstrip("\r"))
    assert long_id.value.field == "MSH-10"
    with pytest.raises(er7.Er7Error) as long_type:
        er7.read_header(message(msh9="A" * (MAX_MESSAGE_TYPE_CHARS + 1)).decode())
    assert long_type.value.field == "MSH-9"


@pytest.mark.parametrize("accept", [HL7_ACCEPT, JSON_ACCEPT], ids=["hl7", "json"])
def test_msh12_of_5000_digits_is_acknowledged_and_stored(stack: Stack, accept: dict[str, str]) -> None:
    response = stack.post(message(msh12="2" * 5000), accept)
    assert response.status_code == 202, response.text
    if accept:
        assert msa(response)[1] == "AA"
    assert len(stack.stored) == 1


def test_ack_version_number_never_fails() -> None:
    assert ack._version_number("2" * 5000) == ack.DEFAULT_VERSION_NUMBER
    assert ack._version_number("2.3.1") == (2, 3, 1)
    assert ack._version_number("v2.5") == ack.DEFAULT_VERSION_NUMBER
    assert ack._version_number(None) == ack.DEFAULT_VERSION_NUMBER


@pytest.mark.parametrize("label", ["idna", "punycode", "undefined", "UTF\x00-8", "rot13", "hex", "zlib"])
def test_codec_labels_that_are_not_character_sets_are_unknown(label: str) -> None:
    assert er7.codec_for(label) is None
    assert er7.hex_codec(label) == "utf-8"


@pytest.mark.parametrize(
    "label", ["UNICODE UTF-8", "8859/1", "ISO-8859-15", "windows-1252", "utf-16", "ascii"]
)
def test_real_character_sets_are_still_known(label: str) -> None:
    assert er7.codec_for(label) is not None


@pytest.mark.parametrize("accept", [HL7_ACCEPT, JSON_ACCEPT], ids=["hl7", "json"])
@pytest.mark.parametrize("charset", ["undefined", "idna", "punycode"])
def test_content_type_charset_codec_is_400(stack: Stack, accept: dict[str, str], charset: str) -> None:
    response = stack.post(message(), {**accept, "Content-Type": f"application/hl7-v2; charset={charset}"})
    assert response.status_code == 400, response.text
    if accept:
        assert msa(response)[1] == "AE"
    else:
        assert response.json()["error"] == "bad_message" and "HTTP charset" in response.json()["reason"]
    assert stack.stored == []


def test_programming_error_is_500_with_an_error_id_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    stack = Stack(dedup=Boom(MemoryDedupStore()))
    with caplog.at_level(logging.ERROR):
        response = stack.post(message(pid="SECRET^PATIENT"))
    assert response.status_code == 500, response.text
    assert "Retry-After" not in response.headers
    body = response.json()
    assert body["error"] == "internal" and body["errorId"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert (
        body["errorId"] in logged
        and "ZeroDivisionError" in logged
        and "test_edges_permanent_errors.py:" in logged
    )
    assert "SECRET" not in logged and "division" not in logged  # type and location, not the text
    assert all(r.exc_info is None for r in caplog.records)
    assert stack.stored == []


def test_programming_error_over_hl7_is_ar_207_with_the_error_id() -> None:
    stack = Stack(dedup=Boom(MemoryDedupStore()))
    response = stack.post(message(), HL7_ACCEPT)
    assert response.status_code == 500
    assert "Retry-After" not in response.headers
    assert msa(response)[1:3] == ["AR", "CTRL-1"]
    fields = err(response)
    assert fields[3].startswith("207^") and fields[5] == "internal"
    assert "error id" in fields[8]
    assert stack.stored == []


@pytest.mark.parametrize("accept", [HL7_ACCEPT, JSON_ACCEPT], ids=["hl7", "json"])
def test_transient_failure_is_503_and_the_retry_is_stored_once(stack: Stack, accept: dict[str, str]) -> None:
    stack.hub.fail_next = 1
    failed = stack.post(message(), accept)
    assert failed.status_code == 503 and failed.headers["Retry-After"]
    if accept:
        assert msa(failed)[1] == "AR"
    assert stack.stored == []
    retry = stack.post(message(), accept)
    assert retry.status_code == 202
    if accept:
        assert msa(retry)[1] == "AA"
    assert len(stack.stored) == 1
    again = stack.post(message(), accept)
    assert again.status_code == 409 and len(stack.stored) == 1


def test_ack_is_built_even_when_encoding_in_the_message_charset_fails() -> None:
    received = ack.Received(codec="undefined", control_id="C1")
    answer = ack.acknowledge(received, None, always=True)
    assert answer is not None and answer.code == "AA" and b"MSA|AA|C1" in answer.data


def test_ack_skeleton_keeps_aa_when_the_context_is_broken() -> None:
    received = ack.Received(control_id="C1", version_number=(2, 5), delimiters=None)  # type: ignore[arg-type]
    answer = ack.acknowledge(received, None, always=True)
    assert answer is not None and answer.code == "AA" and b"MSA|AA" in answer.data


def _batch(count: int) -> bytes:
    return b"".join(message(msh10=f"C{i}", pid=f"DOE^N{i}") for i in range(count))


@pytest.mark.parametrize("accept", [HL7_ACCEPT, JSON_ACCEPT], ids=["hl7", "json"])
def test_more_messages_than_the_cap_is_413_before_any_dedup_call(accept: dict[str, str]) -> None:
    stack = Stack(dedup=Boom(MemoryDedupStore()), max_messages_per_request=3)
    response = stack.post(_batch(4), accept)
    assert response.status_code == 413, response.text
    if accept:
        assert msa(response)[1] == "AR"
    else:
        assert response.json()["error"] == "too_many_messages" and "3" in response.json()["message"]
    assert "Retry-After" not in response.headers
    assert stack.stored == []


def test_messages_up_to_the_cap_are_taken() -> None:
    stack = Stack(max_messages_per_request=3)
    response = stack.post(_batch(3))
    assert response.status_code == 202 and response.json()["batch"]["accepted"] == 3


def test_default_cap_is_10000() -> None:
    assert GatewaySettings().max_messages_per_request == 10_000
    service = IngestService(MemoryDedupStore(), MemoryHub(), max_messages=2)
    with pytest.raises(Problem) as refused:
        service.ingest(_batch(3), MediaType("application/hl7-v2", None), "hospital-a")
    assert refused.value.status == 413 and refused.value.details["limit"] == 2
