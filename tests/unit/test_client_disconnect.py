"""A client that closes its connection mid-body is one INFO line, not an error with tracebacks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from typing import Any

import pytest

from tests.unit.test_gateway_api import MSG, Stack

SECRET = b"DOE^JOHN"


def _post_then_disconnect(stack: Stack, accept: str) -> list[dict[str, Any]]:
    """Drives the app over ASGI: half the body arrives, then the client is gone."""
    app = stack.client.app
    headers = {"content-type": "application/hl7-v2", "content-length": str(len(MSG)), "accept": accept}
    headers.update({k.lower(): v for k, v in stack.auth().items()})
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/messages",
        "raw_path": b"/v1/messages",
        "query_string": b"",
        "root_path": "",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": MSG[: len(MSG) // 2], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=5))
    return sent


@pytest.mark.parametrize("accept", ["application/json", "application/hl7-v2"])
def test_a_client_gone_mid_body_is_one_info_line(accept: str, caplog: pytest.LogCaptureFixture) -> None:
    stack = Stack()
    caplog.set_level(logging.DEBUG)
    sent = _post_then_disconnect(stack, accept)
    assert sent[0]["status"] == 400
    assert not stack.hub.published
    gone = [r for r in caplog.records if "disconnected mid-body" in r.getMessage()]
    assert len(gone) == 1 and gone[0].levelno == logging.INFO
    assert f"bytes={len(MSG) // 2} declared={len(MSG)}" in gone[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert SECRET.decode() not in caplog.text
