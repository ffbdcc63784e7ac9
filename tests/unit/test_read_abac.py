"""The read API answers by `custom:read` alone: a token that may write for a source but not read it sees
nothing of that source (404 on the item, its raw and parsed forms and its batch; absent from the list)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.auth import Jwks, TokenVerifier
from gateway.config import GatewaySettings
from gateway.ingest import IngestService
from gateway.services import GatewayServices
from tests.fakes.dedup import MemoryDedupStore
from tests.fakes.hub import MemoryHub
from tests.fakes.lake_reader import MemoryLakeReader
from tests.tokens import CLIENT_ID, ISSUER, TokenFactory

SOURCES = ("hospital-a", "hospital-b")


class Stack:
    def __init__(self) -> None:
        self.tokens = TokenFactory()
        self.reader = MemoryLakeReader()
        jwks = Jwks("https://idp.test/jwks.json", http=httpx.Client(transport=self.tokens.jwks_transport()))
        services = GatewayServices(
            settings=GatewaySettings(),
            verifier=TokenVerifier(jwks, ISSUER, CLIENT_ID, leeway=0),
            ingest=IngestService(MemoryDedupStore(), MemoryHub()),
            reader=self.reader,
        )
        self.client = TestClient(create_app(services), raise_server_exceptions=False)
        for n, source in enumerate(SOURCES):
            self._catalog(source, f"M{n}", f"B{n}")

    def _catalog(self, source: str, mid: str, bid: str) -> None:
        at = "2026-01-02T03:04:05.000Z"
        self.reader.items[mid] = {
            "id": mid,
            "source": source,
            "status": "parsed",
            "messageType": "ADT^A01",
            "controlId": f"C-{mid}",
            "receivedAt": at,
            "sortKey": f"{at}#{mid}",
            "raw": f"s3://lake/raw/{mid}.hl7",
            "parsed": f"s3://lake/parsed/{mid}.json",
            "fhir": f"s3://lake/fhir/{mid}.json",
        }
        self.reader.objects[f"s3://lake/raw/{mid}.hl7"] = b"MSH|..."
        self.reader.objects[f"s3://lake/parsed/{mid}.json"] = b"{}"
        self.reader.objects[f"s3://lake/fhir/{mid}.json"] = b'{"resourceType":"Bundle"}'
        self.reader.items[bid] = {"id": bid, "kind": "batch", "source": source, "status": "processing"}

    def get(self, path: str, write: str, read: str) -> httpx.Response:
        claims: dict[str, Any] = {"custom:write": write, "custom:read": read}
        token = self.tokens.token(**claims)
        response: httpx.Response = self.client.get(path, headers={"Authorization": f"Bearer {token}"})
        return response


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    yield Stack()


@pytest.mark.parametrize(
    "path",
    [
        "/v1/messages/M1",
        "/v1/messages/M1/raw",
        "/v1/messages/M1/parsed",
        "/v1/messages/M1/fhir",
        "/v1/messages/M1/events",
    ],
)
def test_write_without_read_is_404_on_the_item(stack: Stack, path: str) -> None:
    assert stack.get(path, write="hospital-a,hospital-b", read="hospital-a").status_code == 404
    assert stack.get(path, write="hospital-b", read="").status_code == 404
    assert stack.get(path, write="", read="hospital-b").status_code == 200  # the control: read suffices


def test_write_without_read_is_404_on_the_batch(stack: Stack) -> None:
    assert stack.get("/v1/batches/B1", write="hospital-a,hospital-b", read="hospital-a").status_code == 404
    assert stack.get("/v1/batches/B1", write="hospital-b", read="").status_code == 404
    assert stack.get("/v1/batches/B1", write="", read="hospital-b").status_code == 200


def test_the_list_holds_readable_sources_only(stack: Stack) -> None:
    listed = stack.get("/v1/messages", write="hospital-a,hospital-b", read="hospital-a")
    assert listed.status_code == 200
    assert [i["id"] for i in listed.json()["items"]] == ["M0"]
    both = stack.get("/v1/messages", write="", read="hospital-a,hospital-b").json()["items"]
    assert sorted(i["id"] for i in both) == ["M0", "M1"]  # the control: read shows both


def test_a_write_only_token_lists_nothing(stack: Stack) -> None:
    listed = stack.get("/v1/messages", write="hospital-a,hospital-b", read="")
    assert listed.status_code == 200 and listed.json() == {"items": [], "next": None}
