"""Shared fixtures: the public corpus and, for integration tests, a moto server started by the tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hl7lake.emulator import free_port

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "hl7-corpus"
PEER_CORPUS = SHARED / "hl7-peer-corpus"


SUITE_MARKERS = {"integration": "integration", "e2e": "e2e"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markers by directory: every test under tests/integration/ is ``integration``, every test under
    tests/e2e/ is ``e2e`` (a ``pytestmark`` in a conftest.py applies to nothing). So
    ``pytest -m integration`` selects the integration suite and ``-m "not e2e and not integration"``
    the fast loop."""
    tests_dir = Path(__file__).resolve().parent
    for item in items:
        try:
            suite = item.path.resolve().relative_to(tests_dir).parts[0]
        except ValueError:
            continue
        marker = SUITE_MARKERS.get(suite)
        if marker is not None:
            item.add_marker(getattr(pytest.mark, marker))


def require_shared(path: Path, what: str) -> Path:
    """``path`` (a corpus under ../shared/) when it is there. Missing, the test fails under CI=true
    (a CI run that silently skips every corpus test proves nothing) and skips with the reason locally."""
    if (path / "messages").is_dir() and (path / "MANIFEST.tsv").is_file():
        return path
    reason = f"{what} not found at {path} (it lives in ../shared/ beside the project)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true: corpus tests must not be skipped")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The public HL7 corpus (../shared/hl7-corpus): every test that reads it asks for this fixture."""
    return require_shared(CORPUS, "public HL7 corpus")


@pytest.fixture(scope="session")
def peer_corpus_dir() -> Path:
    """The peer ER7 corpus (../shared/hl7-peer-corpus): messages from other HL7 projects' tests."""
    return require_shared(PEER_CORPUS, "peer ER7 corpus")


def corpus_message(name: str) -> bytes:
    """A file of the public corpus, for tests that also request ``corpus_dir`` (which fails under CI
    or skips locally when the corpus is missing); called without it, a missing corpus still fails here."""
    return (require_shared(CORPUS, "public HL7 corpus") / "messages" / name).read_bytes()


EXTERNAL_ENDPOINT = os.environ.get(
    "HL7LAKE_TEST_AWS_ENDPOINT"
)  # e.g. LocalStack, set by `make test-localstack`
EXTERNAL_COGNITO = os.environ.get("HL7LAKE_TEST_COGNITO_ENDPOINT")
# the LocalStack hybrid: DynamoDB from moto too (LocalStack's needs a jar downloaded at run time)
EXTERNAL_DYNAMODB = os.environ.get("HL7LAKE_TEST_DYNAMODB_ENDPOINT")


def external_env() -> dict[str, str]:
    """AWS settings for processes the tests start when the suite runs against an external endpoint."""
    if not EXTERNAL_ENDPOINT:
        return {}
    env = {
        "HL7LAKE_EMULATOR": "external",
        "AWS_ENDPOINT_URL": EXTERNAL_ENDPOINT,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    if EXTERNAL_COGNITO:
        env["AWS_ENDPOINT_URL_COGNITO_IDP"] = EXTERNAL_COGNITO
    if EXTERNAL_DYNAMODB:
        env["AWS_ENDPOINT_URL_DYNAMODB"] = EXTERNAL_DYNAMODB
    return env


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The AWS endpoint for integration tests: a moto server on 127.0.0.1 started here for the session,
    or the external one named by HL7LAKE_TEST_AWS_ENDPOINT. boto3 reaches it through AWS_ENDPOINT_URL."""
    if EXTERNAL_ENDPOINT:
        saved_env = dict(os.environ)
        os.environ.update({k: v for k, v in external_env().items() if k != "HL7LAKE_EMULATOR"})
        yield EXTERNAL_ENDPOINT
        os.environ.clear()
        os.environ.update(saved_env)
        return
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


@pytest.fixture(autouse=True)
def _no_leaked_log_handlers() -> Iterator[None]:
    """A CLI run in-process (`hl7lake dlq`, `parse`) configures logging onto pytest's captured stderr;
    once that stream is closed, threads that outlive the test (the session's moto server) would log
    into it. Remove what the test added."""
    import logging

    root = logging.getLogger()
    before = list(root.handlers)
    yield
    for handler in list(root.handlers):
        if handler not in before and type(handler) is logging.StreamHandler:
            root.removeHandler(handler)


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """Commands run in-process (`hl7lake token`, `dlq`) point AWS_ENDPOINT_URL at the local emulator
    for the rest of their process; in a test run that would leak into the next test."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)
