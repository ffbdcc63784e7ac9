"""Shared fixtures: the public corpus and, for integration tests, a moto server started by the tests."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "hl7-corpus"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not (CORPUS / "messages").is_dir():
        pytest.skip(f"public corpus not found at {CORPUS}")
    return CORPUS


def corpus_message(name: str) -> bytes:
    return (CORPUS / "messages" / name).read_bytes()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server on 127.0.0.1 for the whole session; boto3 reaches it through AWS_ENDPOINT_URL."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def prefix(monkeypatch: pytest.MonkeyPatch) -> str:
    """A unique resource-name prefix per test, so tests never see each other's resources."""
    value = f"t{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("HL7LAKE_PREFIX", value)
    return value
