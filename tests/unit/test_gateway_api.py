"""The front door over HTTP, with in-memory hub, dedup and lake (real token checks)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.auth import Jwks, TokenVerifier
from gateway.config import GatewaySettings
from gateway.ingest import IngestService
from gateway.services import GatewayServices
from hub.events import Event, Format
from tests.fakes.dedup import MemoryDedupStore
from tests.fakes.hub import MemoryHub
from tests.fakes.lake_reader import MemoryLakeReader
from tests.tokens import CLIENT_ID, ISSUER, TokenFactory

MSG = (
    b"MSH|^~\\&|LAB|HOSP_A|LAKE|AWS|20260101120000||ADT^A01^ADT_A01|CTRL-1|P|2.5.1\r"
    b"PID|1||MRN1^^^HOSP_A~SSN9^^^SSA||DOE^JOHN||19700101|M\r"
)
ER7 = {"Content-Type": "application/hl7-v2"}


class Stack:
    def __init__(self) -> None:
        self.tokens = TokenFactory()
        self.hub = MemoryHub()
        self.dedup = MemoryDedupStore()
        self.reader = MemoryLakeReader()
        jwks = Jwks("https://idp.test/jwks.json", http=httpx.Client(transport=self.tokens.jwks_transport()))
        services = GatewayServices(
            settings=GatewaySettings(max_body_bytes=4096),
            verifier=TokenVerifier(jwks, ISSUER, CLIENT_ID, lambda t: {"custom:write": "hospital-b"}),
            ingest=IngestService(self.dedup, self.hub),
            reader=self.reader,
            readiness={"hub": lambda: None},
        )
        self.client = TestClient(create_app(services), raise_server_exceptions=False)

    def auth(self, **claims: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.token(**claims)}"}

    def post(self, body: bytes = MSG, headers: dict[str, str] | None = None, **claims: str) -> httpx.Response:
        return self.client.post(
            "/v1/messages", content=body, headers={**ER7, **self.auth(**claims), **(headers or {})}
        )


@pytest.fixture
def stack() -> Iterator[Stack]:
    yield Stack()


def test_accepts_and_publishes_received_event(stack: Stack) -> None:
    response = stack.post()
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "accepted" and body["duplicate"] is False
    assert (
        body["messageType"] == "ADT^A01" and body["controlId"] == "CTRL-1" and body["source"] == "hospital-a"
    )
    assert response.headers["Location"] == f"/v1/messages/{body['id']}"
    [event] = stack.hub.published
    assert (event.event, event.format, event.id) == (Event.RECEIVED, Format.ER7, body["id"])
    assert event.attributes() == {
        "event": "message.received",
        "protocol": "hl7v2",
        "format": "er7",
        "messageType": "ADT^A01",
        "source": "hospital-a",
        "messageId": body["id"],
    }
    assert event.payload == MSG.decode()
    assert [e.id for e in stack.hub.drain("er7-staging")] == [body["id"]]


def test_duplicate_is_409_with_original_id_even_with_other_line_endings(stack: Stack) -> None:
    first = stack.post().json()
    again = stack.post(MSG.replace(b"\r", b"\r\n"))
    assert again.status_code == 409
    assert again.json()["duplicate"] is True and again.json()["id"] == first["id"]
    assert len(stack.hub.published) == 1


def test_same_message_from_another_source_is_not_a_duplicate(stack: Stack) -> None:
    assert stack.post().status_code == 202
    assert stack.post(**{"custom:write": "hospital-b"}).status_code == 202


def test_reused_control_id_with_other_content_is_accepted_and_flagged(stack: Stack) -> None:
    stack.post()
    response = stack.post(MSG.replace(b"DOE^JOHN", b"ROE^JANE"))
    assert response.status_code == 202
    assert response.json()["controlIdReused"] is True
    assert stack.hub.published[-1].flags == ("controlIdReused",)


def test_hub_failure_is_503_and_the_retry_is_accepted(stack: Stack) -> None:
    stack.hub.fail_next = 1
    failed = stack.post()
    assert failed.status_code == 503 and failed.headers["Retry-After"]
    assert stack.hub.published == []
    retry = stack.post()
    assert retry.status_code == 202 and retry.json()["duplicate"] is False


def test_dedup_store_down_is_503(stack: Stack) -> None:
    stack.dedup.unavailable = True
    response = stack.post()
    assert response.status_code == 503 and "Retry-After" in response.headers


@pytest.mark.parametrize(
    ("body", "field", "segment"),
    [
        (b"PID|1||MRN1\r", None, "PID"),
        (b"MSH|^~\\&|A|B|C|D|20260101||||P|2.5\r", "MSH-9", "MSH"),
        (b"MSH|^~ &|A|B|C|D|20260101||ADT^A01|1|P|2.5\r", "MSH-2", "MSH"),
    ],
)
def test_unreadable_header_is_400_naming_the_field(
    stack: Stack, body: bytes, field: str | None, segment: str
) -> None:
    response = stack.post(body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error"] == "bad_message"
    assert error["segment"] == segment
    if field:
        assert error["field"] == field
    assert error["reason"]


def test_empty_body_is_400(stack: Stack) -> None:
    response = stack.post(b"")
    assert response.status_code == 400 and "empty" in response.json()["message"]


def test_undecodable_bytes_are_400_not_mojibake(stack: Stack) -> None:
    response = stack.post(MSG.replace(b"DOE", b"D\x96E"))
    assert response.status_code == 400
    assert "0x96" in response.json()["message"]
    ok = stack.post(
        MSG.replace(b"DOE", b"D\x96E"), headers={"Content-Type": "application/hl7-v2; charset=cp1252"}
    )
    assert ok.status_code == 202
    assert "D–E" in stack.hub.published[-1].payload


def test_too_large_is_413(stack: Stack) -> None:
    response = stack.post(MSG + b"NTE|1||" + b"x" * 5000 + b"\r")
    assert response.status_code == 413


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded", ""])
def test_wrong_media_type_is_415(stack: Stack, content_type: str) -> None:
    response = stack.post(headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert "application/hl7-v2" in response.json()["message"]


@pytest.mark.parametrize(
    "content_type", ["application/hl7-v2", "x-application/hl7-v2+er7", "text/plain; charset=utf-8"]
)
def test_er7_media_types_are_accepted(stack: Stack, content_type: str) -> None:
    assert stack.post(headers={"Content-Type": content_type}).status_code == 202


def test_missing_or_bad_token_is_401_with_challenge(stack: Stack) -> None:
    missing = stack.client.post("/v1/messages", content=MSG, headers=ER7)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    bad = stack.client.post("/v1/messages", content=MSG, headers={**ER7, "Authorization": "Bearer abc"})
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["WWW-Authenticate"]
    basic = stack.client.post("/v1/messages", content=MSG, headers={**ER7, "Authorization": "Basic eDp5"})
    assert basic.status_code == 401


def test_no_write_attribute_is_403(stack: Stack) -> None:
    response = stack.post(**{"custom:write": ""})
    assert response.status_code == 403
    assert stack.hub.published == []


def test_x_source_picks_among_several_write_institutions(stack: Stack) -> None:
    several = {"custom:write": "hospital-a,hospital-c"}
    assert stack.post(**several).status_code == 400
    assert stack.post(headers={"X-Source": "hospital-c"}, **several).json()["source"] == "hospital-c"
    assert stack.post(MSG + b"NTE|1\r", headers={"X-Source": "hospital-z"}, **several).status_code == 403


def _catalog(stack: Stack) -> None:
    for i, (source, status) in enumerate(
        [
            ("hospital-a", "parsed"),
            ("hospital-b", "parsed"),
            ("hospital-a", "failed"),
            ("hospital-a", "parsed"),
        ]
    ):
        mid = f"M{i}"
        stack.reader.items[mid] = {
            "id": mid,
            "source": source,
            "status": status,
            "messageType": "ADT^A01",
            "controlId": f"C{i}",
            "receivedAt": f"2026-01-0{i + 1}T00:00:00.000Z",
            "sortKey": f"2026-01-0{i + 1}T00:00:00.000Z#{mid}",
            "raw": f"s3://lake/raw/{mid}.hl7",
            "parsed": f"s3://lake/parsed/{mid}.json" if status == "parsed" else None,
            "error": {"reason": "bad"} if status == "failed" else None,
        }
        stack.reader.objects[f"s3://lake/raw/{mid}.hl7"] = b"MSH|..."
        if status == "parsed":
            stack.reader.objects[f"s3://lake/parsed/{mid}.json"] = b'{"id": "%s"}' % mid.encode()


def test_read_api_shows_only_readable_sources(stack: Stack) -> None:
    _catalog(stack)
    auth = stack.auth()
    item = stack.client.get("/v1/messages/M0", headers=auth).json()
    assert (
        item["status"] == "parsed"
        and item["controlId"] == "C0"
        and set(item)
        >= {"status", "messageType", "controlId", "source", "receivedAt", "raw", "parsed", "error"}
    )
    assert stack.client.get("/v1/messages/M1", headers=auth).status_code == 404  # hospital-b
    assert stack.client.get("/v1/messages/nope", headers=auth).status_code == 404
    assert stack.client.get("/v1/messages/M0/raw", headers=auth).content == b"MSH|..."
    assert stack.client.get("/v1/messages/M0/parsed", headers=auth).json() == {"id": "M0"}
    assert stack.client.get("/v1/messages/M2/parsed", headers=auth).status_code == 404
    assert stack.client.get("/v1/messages/M1/raw", headers=auth).status_code == 404
    assert stack.client.get("/v1/messages/M0").status_code == 401


def test_list_is_newest_first_filtered_and_paginated(stack: Stack) -> None:
    _catalog(stack)
    auth = stack.auth()
    first = stack.client.get("/v1/messages?limit=2", headers=auth).json()
    assert [i["id"] for i in first["items"]] == ["M3", "M2"]
    second = stack.client.get(f"/v1/messages?limit=2&cursor={first['next']}", headers=auth).json()
    assert [i["id"] for i in second["items"]] == ["M0"] and second["next"] is None
    parsed = stack.client.get("/v1/messages?status=parsed", headers=auth).json()
    assert [i["id"] for i in parsed["items"]] == ["M3", "M0"]
    assert stack.client.get("/v1/messages?type=ADT_A01", headers=auth).json()["items"][0]["id"] == "M3"
    assert stack.client.get("/v1/messages?type=ORU^R01", headers=auth).json() == {"items": [], "next": None}
    assert stack.client.get("/v1/messages?status=bogus", headers=auth).status_code == 400
    assert stack.client.get("/v1/messages?cursor=%%%", headers=auth).status_code == 400


def test_health_and_docs(stack: Stack) -> None:
    assert stack.client.get("/healthz").json() == {"status": "ok"}
    assert stack.client.get("/readyz").json()["status"] == "ready"
    assert "/v1/messages" in stack.client.get("/openapi.json").json()["paths"]
    assert stack.client.get("/docs").status_code == 200
    assert b"hl7lake_http_requests_total" in stack.client.get("/metrics").content


def test_openapi_names_the_parsed_document_type(stack: Stack) -> None:
    spec = stack.client.get("/openapi.json").json()
    ok = spec["paths"]["/v1/messages/{message_id}/parsed"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ParsedDocument"}
    assert spec["components"]["schemas"]["ParsedDocument"]["additionalProperties"] is False


def test_rejected_message_is_kept_for_the_lake_with_its_raw_bytes(stack: Stack) -> None:
    import base64

    body = b"MSH|^~\\&|A|B|C|D|20260101||||P|2.5\rPID|1||M\xc3\xbcLLER\r"
    response = stack.post(body)
    assert response.status_code == 400
    [event] = stack.hub.published
    assert event.event is Event.FAILED and event.id == response.json()["id"]
    assert base64.b64decode(event.payload) == body
    assert event.error["field"] == "MSH-9" and event.error["stage"] == "gateway"
    assert stack.hub.drain("er7-staging") == []  # failures go to the lake only
    assert [e.id for e in stack.hub.drain("lake-writer")] == [event.id]


def batch_body(*messages: bytes, declared: int | None = None) -> bytes:
    count = len(messages) if declared is None else declared
    return b"FHS|^~\\&|SENDER\rBHS|^~\\&|SENDER\r" + b"".join(messages) + b"BTS|%d\rFTS|1\r" % count


def test_batch_gives_one_entry_per_message_and_dedups_each(stack: Stack, corpus_dir) -> None:
    body = (corpus_dir / "messages" / "044-BATCH_ADT_A04-2.5.hl7").read_bytes()
    first = stack.post(body)
    assert first.status_code == 202, first.text
    result = first.json()
    # the file's third message repeats its first byte for byte: a duplicate within the batch
    assert (result["batch"]["messages"], result["batch"]["accepted"], result["batch"]["duplicate"]) == (
        3,
        2,
        1,
    )
    assert result["batch"]["problems"] == [] and result["batch"]["declaredCounts"]["FTS-1"] == 2
    ids = [m["id"] for m in result["messages"]]
    assert ids[2] == ids[0] and ids[1] != ids[0] and [m["index"] for m in result["messages"]] == [1, 2, 3]
    links = [e.batch for e in stack.hub.published]
    assert len(links) == 2
    assert all(link["id"] == result["batch"]["id"] and link["count"] == 3 for link in links)
    again = stack.post(body).json()
    assert again["batch"]["duplicate"] == 3
    assert [m["id"] for m in again["messages"]] == ids


def test_batch_member_that_cannot_be_read_is_rejected_alone(stack: Stack) -> None:
    good = MSG
    bad = b"MSH|^~\\&|A|B|C|D|20260101||||P|2.5\rPID|1\r"  # no MSH-9
    result = stack.post(batch_body(good, bad)).json()
    statuses = [m["status"] for m in result["messages"]]
    assert statuses == ["accepted", "rejected"]
    assert result["messages"][1]["error"]["field"] == "MSH-9"
    kinds = sorted(e.event.value for e in stack.hub.published)  # accepted ones are published together
    assert kinds == [Event.FAILED.value, Event.RECEIVED.value]


def test_batch_count_mismatch_is_reported(stack: Stack) -> None:
    result = stack.post(batch_body(MSG, declared=2)).json()
    assert result["batch"]["accepted"] == 1
    [problem] = result["batch"]["problems"]
    assert problem["field"] == "BTS-1" and "2" in problem["reason"]
    assert stack.hub.published[0].batch["problems"] == [problem]  # kept with the member, in the catalog


def test_messages_without_envelope_are_split(stack: Stack) -> None:
    second = MSG.replace(b"CTRL-1", b"CTRL-2").replace(b"DOE", b"ROE")
    result = stack.post(MSG + second).json()
    assert [m["controlId"] for m in result["messages"]] == ["CTRL-1", "CTRL-2"]


def test_hub_down_mid_batch_is_503_and_the_retry_completes_it(stack: Stack) -> None:
    second = MSG.replace(b"CTRL-1", b"CTRL-2").replace(b"DOE", b"ROE")
    stack.post(MSG)  # the first is already in the lake
    stack.hub.fail_next = 1
    assert stack.post(batch_body(MSG, second)).status_code == 503
    retry = stack.post(batch_body(MSG, second)).json()
    assert [m["status"] for m in retry["messages"]] == ["duplicate", "accepted"]


def test_batch_over_hl7_http_gets_one_ack(stack: Stack) -> None:
    second = MSG.replace(b"CTRL-1", b"CTRL-2").replace(b"DOE", b"ROE")
    response = stack.post(MSG + second, headers={"Accept": "application/hl7-v2"})
    assert response.status_code == 202
    assert response.headers["content-type"].startswith("application/hl7-v2")
    assert b"MSA|AA|CTRL-1" in response.content
    assert len(stack.hub.published) == 2


def test_a_token_is_checked_once_and_off_the_event_loop(stack: Stack, monkeypatch) -> None:
    verifier = stack.client.app.state.services.verifier
    calls: list[bool] = []
    verify = verifier.verify

    def recording_verify(token: str):
        try:
            asyncio.get_running_loop()
            calls.append(True)  # on the event loop: a JWKS fetch here would stall every request
        except RuntimeError:
            calls.append(False)
        return verify(token)

    monkeypatch.setattr(verifier, "verify", recording_verify)
    auth = stack.auth(sub="user-once")
    assert stack.post(headers=auth).status_code == 202
    assert stack.post(MSG + b"NTE|1\r", headers=auth).status_code == 202
    assert stack.client.get("/v1/messages/M0", headers=auth).status_code == 404
    assert calls == [False]  # the first request verified it in a worker thread; the others remembered it


def test_forged_signature_on_a_known_token_is_401(stack: Stack) -> None:
    now = int(time.time())
    claims = {"iat": now, "exp": now + 3600}
    genuine = stack.tokens.token(**claims)
    assert stack.post(headers={"Authorization": f"Bearer {genuine}"}).status_code == 202
    forged = TokenFactory(kid=stack.tokens.kid).token(**claims)
    response = stack.post(MSG + b"NTE|1\r", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert len(stack.hub.published) == 1


def test_requests_are_counted_by_route_template_and_status(stack: Stack) -> None:
    stack.post()
    stack.client.get("/v1/messages/nope", headers=stack.auth())
    metrics = stack.client.get("/metrics").text
    assert 'hl7lake_http_requests_total{route="/v1/messages",status="202"}' in metrics
    assert 'hl7lake_http_requests_total{route="/v1/messages/{message_id}",status="404"}' in metrics
    assert 'hl7lake_http_request_seconds_count{route="/v1/messages"}' in metrics
