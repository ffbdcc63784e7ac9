"""Back-pressure (refuse what the pipeline cannot finish) and outages (answer, never hang)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import boto3
import httpx
import pytest
from botocore.config import Config
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.auth import Jwks, TokenVerifier
from gateway.backlog import BacklogMonitor
from gateway.config import GatewaySettings
from gateway.dedup import DynamoDedupStore
from gateway.ingest import IngestService, MediaType
from gateway.problems import Problem
from gateway.services import GatewayServices
from hub import aws
from tests.fakes.dedup import MemoryDedupStore
from tests.fakes.hub import MemoryHub
from tests.fakes.lake_reader import MemoryLakeReader
from tests.tokens import CLIENT_ID, ISSUER, TokenFactory

MSG = b"MSH|^~\\&|LAB|HOSP|LAKE|HOSP|20260101120000||ORU^R01|CTRL-7|P|2.5\rPID|1||12345^^^HOSP\r"
ER7 = {"Content-Type": "application/hl7-v2"}


class Depths:
    def __init__(self) -> None:
        self.value = {"er7-staging": 0, "lake-writer": 0}
        self.reads = 0

    def __call__(self) -> dict[str, int]:
        self.reads += 1
        return dict(self.value)


def wait_until(predicate, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


class Stack:
    def __init__(self, readiness: dict | None = None) -> None:  # type: ignore[type-arg]
        self.tokens = TokenFactory()
        self.hub = MemoryHub()
        self.depths = Depths()
        self.backlog = BacklogMonitor(self.depths, limit=100, refresh_seconds=0)
        jwks = Jwks("https://idp.test/jwks.json", http=httpx.Client(transport=self.tokens.jwks_transport()))
        services = GatewayServices(
            settings=GatewaySettings(readiness_timeout_seconds=0.5),
            verifier=TokenVerifier(jwks, ISSUER, CLIENT_ID, lambda t: {"custom:write": "hospital-b"}),
            ingest=IngestService(MemoryDedupStore(), self.hub, backlog=self.backlog),
            reader=MemoryLakeReader(),
            readiness=readiness or {"hub": lambda: None},
            backlog=self.backlog,
        )
        self.client = TestClient(create_app(services), raise_server_exceptions=False)

    def post(self, headers: dict[str, str] | None = None) -> httpx.Response:
        auth = {"Authorization": f"Bearer {self.tokens.token()}"}
        return self.client.post("/v1/messages", content=MSG, headers={**ER7, **auth, **(headers or {})})

    def measured(self) -> None:
        """Wait until the monitor has read the current depths (it refreshes in the background)."""
        reads = self.depths.reads
        self.backlog.current()
        wait_until(lambda: self.depths.reads > reads and not self.backlog._refreshing)


@pytest.fixture
def stack() -> Iterator[Stack]:
    yield Stack()


def test_a_backlog_over_the_limit_refuses_with_retry_after_and_publishes_nothing(stack: Stack) -> None:
    stack.depths.value["er7-staging"] = 5000
    stack.measured()
    response = stack.post()
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    body = response.json()
    assert body["error"] == "busy" and "er7-staging: 5000" in body["message"]
    assert body["backlog"]["behind"] == ["er7-staging"]
    assert stack.hub.published == []
    ready = stack.client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["backlog"] == "behind: er7-staging"

    stack.depths.value["er7-staging"] = 10  # the workers caught up
    stack.measured()
    assert stack.post().status_code == 202
    assert stack.client.get("/readyz").status_code == 200


def test_a_backlog_refusal_over_hl7_is_an_ar_ack(stack: Stack) -> None:
    stack.depths.value["lake-writer"] = 101
    stack.measured()
    response = stack.post({"Accept": "application/hl7-v2"})
    assert response.status_code == 503
    assert "MSA|AR|CTRL-7" in response.text


def test_depths_are_read_in_the_background_never_per_request() -> None:
    depths = Depths()
    monitor = BacklogMonitor(depths, limit=10, refresh_seconds=3600)
    first = monitor.current()
    assert first.measured_at is None and first.behind == []  # unknown: nothing refused
    wait_until(lambda: depths.reads == 1 and monitor.current().measured_at is not None)
    for _ in range(50):
        monitor.current()
    assert depths.reads == 1


def test_an_unreadable_backlog_refuses_nothing() -> None:
    def broken() -> dict[str, int]:
        raise OSError("emulator down")

    monitor = BacklogMonitor(broken, limit=10, refresh_seconds=0)
    assert monitor.refresh().behind == []


def test_readyz_answers_while_a_dependency_hangs() -> None:
    release = threading.Event()
    stack = Stack(readiness={"hub": lambda: None, "catalog": lambda: release.wait(30) and None})
    try:
        response = stack.client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["catalog"] == "failing: no answer within 0.5s"
        assert response.json()["checks"]["hub"] == "ok"
    finally:
        release.set()


@pytest.fixture
def frozen_endpoint() -> Iterator[str]:
    """A TCP endpoint that accepts connections and never answers: the emulator frozen (SIGSTOP)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        server.close()


def test_a_frozen_aws_gets_the_sender_a_503_not_a_hang(frozen_endpoint: str) -> None:
    ddb = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("dynamodb", endpoint_url=frozen_endpoint, config=aws.client_config())
    service = IngestService(DynamoDedupStore(ddb, "dedup", 3600, 15), MemoryHub())
    started = time.monotonic()
    with pytest.raises(Problem) as refused:
        service.ingest(MSG, MediaType("application/hl7-v2", None), "hospital-a")
    elapsed = time.monotonic() - started
    assert refused.value.status == 503 and "Retry-After" in refused.value.headers
    print(f"frozen AWS answered 503 after {elapsed:.1f}s")


def test_every_service_bounds_its_aws_calls() -> None:
    config: Config = aws.client_config()
    assert config.read_timeout <= 5 and config.connect_timeout <= 2
    assert config.retries == {"mode": "standard", "max_attempts": 2}
    long_poll = aws.client_config(read_timeout=15)
    assert long_poll.read_timeout == 15
