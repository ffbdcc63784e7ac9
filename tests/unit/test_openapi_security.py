"""The OpenAPI document declares the bearer scheme: on every operation that needs a token, on no other
(so /docs offers its Authorize button and clients generated from the file send the header)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_gateway_api import Stack

PROTECTED = [
    ("post", "/v1/messages"),
    ("get", "/v1/messages"),
    ("get", "/v1/messages/{message_id}"),
    ("get", "/v1/messages/{message_id}/raw"),
    ("get", "/v1/messages/{message_id}/parsed"),
    ("get", "/v1/messages/{message_id}/fhir"),
    ("get", "/v1/messages/{message_id}/events"),
    ("get", "/v1/batches/{batch_id}"),
]
OPEN = [("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics")]


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    document: dict[str, Any] = Stack().client.get("/openapi.json").json()
    return document


def test_the_bearer_scheme_is_declared(openapi: dict[str, Any]) -> None:
    schemes = openapi["components"]["securitySchemes"]
    assert list(schemes.values()) == [
        {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A Cognito ID or access token of this user pool.",
        }
    ]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_protected_operations_require_it(openapi: dict[str, Any], method: str, path: str) -> None:
    (scheme,) = openapi["components"]["securitySchemes"]
    operation = openapi["paths"][path][method]
    assert operation["security"] == [{scheme: []}]
    # The header belongs to the scheme, not listed again as a parameter of its own.
    assert "authorization" not in {p["name"].lower() for p in operation.get("parameters", [])}


@pytest.mark.parametrize(("method", "path"), OPEN)
def test_health_and_metrics_require_nothing(openapi: dict[str, Any], method: str, path: str) -> None:
    assert "security" not in openapi["paths"][path][method]
    assert "security" not in openapi


def test_every_operation_is_classified(openapi: dict[str, Any]) -> None:
    operations = {(m, p) for p, item in openapi["paths"].items() for m in item}
    assert operations == set(PROTECTED) | set(OPEN)
