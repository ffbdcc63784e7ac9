"""The /ui dashboard with in-memory services: login, session cookie, ABAC, escaping, failure highlight."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.auth import Jwks, TokenVerifier
from gateway.config import GatewaySettings
from gateway.ingest import IngestService
from gateway.services import GatewayServices
from gateway.ui import activity, router
from gateway.ui.login import CognitoPasswordLogin, LoginRefused, LoginUnavailable
from gateway.ui.queues import QueueDepth, SqsQueueDepths
from gateway.ui.services import UiServices
from gateway.ui.session import COOKIE
from tests.fakes.dedup import MemoryDedupStore
from tests.fakes.hub import MemoryHub
from tests.fakes.lake_reader import MemoryLakeReader
from tests.tokens import CLIENT_ID, ISSUER, TokenFactory

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RAW_A = "MSH|^~\\&|LAB|HOSP_A|LAKE|AWS|20260101120000||ADT^A01|C1|P|2.5.1\rPID|1||MRN1^^^HOSP_A||DOE^JOHN\r"


def at(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeLogin:
    def __init__(self, tokens: TokenFactory) -> None:
        self.tokens = tokens
        self.users = {"reader-a": ("pw-a", "hospital-a"), "reader-b": ("pw-b", "hospital-b")}

    def id_token(self, username: str, password: str) -> str:
        known = self.users.get(username)
        if known is None or known[0] != password:
            raise LoginRefused("wrong user name or password")
        return self.tokens.token(**{"cognito:username": username, "custom:read": known[1]})


class FakeQueues:
    def __init__(self) -> None:
        self.fail = False

    def depths(self) -> list[QueueDepth]:
        if self.fail:
            raise ConnectionError("down")
        return [QueueDepth("er7-staging", 3, 1, 0), QueueDepth("lake-writer", 0, 0, 2)]


def item(mid: str, source: str, status: str, minutes_ago: float, **extra: object) -> dict:
    return {
        "id": mid,
        "source": source,
        "status": status,
        "messageType": "ADT^A01",
        "controlId": "C1",
        "receivedAt": at(minutes_ago),
        "sortKey": f"{at(minutes_ago)}#{mid}",
        **extra,
    }


class Dashboard:
    def __init__(self, base_url: str = "http://testserver") -> None:
        self.tokens = TokenFactory()
        self.reader = MemoryLakeReader()
        self.queues = FakeQueues()
        jwks = Jwks("https://idp.test/jwks.json", http=httpx.Client(transport=self.tokens.jwks_transport()))
        services = GatewayServices(
            settings=GatewaySettings(),
            verifier=TokenVerifier(jwks, ISSUER, CLIENT_ID),
            ingest=IngestService(MemoryDedupStore(), MemoryHub()),
            reader=self.reader,
            ui=UiServices(login=FakeLogin(self.tokens), queues=self.queues),
        )
        self.client = TestClient(create_app(services), base_url=base_url, follow_redirects=False)

    def add(self, it: dict, objects: dict[str, bytes] | None = None) -> None:
        self.reader.items[it["id"]] = it
        self.reader.objects.update(objects or {})

    def login(self, user: str = "reader-a", password: str = "pw-a") -> httpx.Response:
        return self.client.post(
            "/ui/login",
            content=f"username={user}&password={password}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router, "clock", lambda: NOW)


@pytest.fixture
def ui() -> Dashboard:
    return Dashboard()


@pytest.mark.parametrize("path", ["/ui", "/ui/messages/m1"])
def test_pages_redirect_to_login_without_a_session(ui: Dashboard, path: str) -> None:
    response = ui.client.get(path)
    assert response.status_code == 303 and response.headers["location"] == "/ui/login"


def test_an_invalid_cookie_redirects_and_is_cleared(ui: Dashboard) -> None:
    ui.client.cookies.set(COOKIE, "not-a-token", path="/ui")
    response = ui.client.get("/ui")
    assert response.status_code == 303 and response.headers["location"] == "/ui/login"
    assert f"{COOKIE}=" in response.headers["set-cookie"] and "Max-Age=0" in response.headers["set-cookie"]


def test_an_access_token_does_not_open_a_session(ui: Dashboard) -> None:
    ui.client.cookies.set(COOKIE, ui.tokens.token(token_use="access"), path="/ui")
    assert ui.client.get("/ui").status_code == 303


def test_login_sets_an_httponly_strict_cookie_and_logout_clears_it(ui: Dashboard) -> None:
    response = ui.login()
    assert response.status_code == 303 and response.headers["location"] == "/ui"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/ui" in cookie and "Secure" not in cookie
    page = ui.client.get("/ui")
    assert page.status_code == 200 and "reader-a" in page.text
    out = ui.client.post("/ui/logout")
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert ui.client.get("/ui").status_code == 303


def test_cookie_is_secure_over_https() -> None:
    ui = Dashboard(base_url="https://testserver")
    assert "Secure" in ui.login().headers["set-cookie"]


def test_wrong_password_is_refused_without_a_cookie(ui: Dashboard) -> None:
    response = ui.login(password="nope")
    assert response.status_code == 401 and "wrong user name or password" in response.text
    assert "set-cookie" not in response.headers


def test_login_page_redirects_when_already_logged_in(ui: Dashboard) -> None:
    ui.login()
    assert ui.client.get("/ui/login").headers["location"] == "/ui"


def test_overview_lists_only_readable_messages_with_filters(ui: Dashboard) -> None:
    ui.add(item("a-parsed", "hospital-a", "parsed", 5))
    ui.add(item("a-failed", "hospital-a", "failed", 10))
    ui.add(item("b-secret", "hospital-b", "parsed", 1))
    ui.login()
    page = ui.client.get("/ui").text
    assert "a-parsed" in page and "a-failed" in page and "b-secret" not in page
    assert "2 received, 1 failed" in page
    failed = ui.client.get("/ui", params={"status": "failed"}).text
    assert "a-failed" in failed and "a-parsed" not in failed
    # a source outside the read scope shows nothing, not that source's messages
    assert "b-secret" not in ui.client.get("/ui", params={"source": "hospital-b"}).text


def test_overview_shows_queue_depths_or_says_unavailable(ui: Dashboard) -> None:
    ui.login()
    page = ui.client.get("/ui").text
    assert "er7-staging" in page and "lake-writer" in page
    ui.queues.fail = True
    assert "Queue depths unavailable" in ui.client.get("/ui").text


def test_message_outside_the_read_scope_is_404(ui: Dashboard) -> None:
    ui.add(item("b-secret", "hospital-b", "parsed", 1))
    ui.login()
    response = ui.client.get("/ui/messages/b-secret")
    assert response.status_code == 404 and "b-secret" not in response.text.replace("/ui/messages", "")
    assert ui.client.get("/ui/messages/missing").status_code == 404


def test_message_content_is_escaped(ui: Dashboard) -> None:
    evil = "<script>alert(1)</script>"
    raw = RAW_A.replace("DOE^JOHN", f"DOE^{evil}")
    document = {
        "header": {"version": "2.5.1"},
        "segments": [{"id": "PID", "fields": {"5.2": evil}}],
    }
    ui.add(
        item(
            "a-evil",
            "hospital-a",
            "parsed",
            1,
            raw="s3://lake/raw",
            parsed="s3://lake/parsed",
            messageType=evil,
        ),
        {"s3://lake/raw": raw.encode(), "s3://lake/parsed": json.dumps(document).encode()},
    )
    ui.login()
    for page in (ui.client.get("/ui").text, ui.client.get("/ui/messages/a-evil").text):
        assert evil not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_message_page_shows_fields_with_names_raw_and_no_steps(ui: Dashboard) -> None:
    document = {
        "header": {"version": "2.5.1"},
        "segments": [{"id": "MSH", "fields": {"9.1": "ADT"}}, {"id": "PID", "fields": {"3.1": "MRN1"}}],
    }
    ui.add(
        item("a-1", "hospital-a", "parsed", 1, raw="s3://lake/raw", parsed="s3://lake/parsed"),
        {"s3://lake/raw": RAW_A.encode(), "s3://lake/parsed": json.dumps(document).encode()},
    )
    ui.login()
    page = ui.client.get("/ui/messages/a-1").text
    assert "PID-3.1" in page and "Patient Identifier List" in page and "Message Type" in page
    assert 'id="raw"' in page and "no steps recorded" in page and "FHIR" not in page


def test_message_page_shows_steps_and_fhir_when_present(ui: Dashboard) -> None:
    steps = [
        {
            "service": "er7-staging",
            "instance": "w1",
            "event": "message.received",
            "outcome": "parsed",
            "reason": None,
            "receivedAt": at(1),
            "doneAt": at(0.9),
            "tries": 1,
            "sinceReceiptMs": 42,
        }
    ]
    ui.add(
        item("a-2", "hospital-a", "parsed", 1, steps=steps, fhir="s3://lake/fhir"),
        {"s3://lake/fhir": b'{"resourceType": "Bundle"}'},
    )
    ui.login()
    page = ui.client.get("/ui/messages/a-2").text
    assert "er7-staging" in page and "42 ms" in page and "no steps recorded" not in page
    assert "FHIR bundle" in page and "Bundle" in page


def test_failed_message_highlights_the_segment_with_its_reason(ui: Dashboard) -> None:
    raw = RAW_A + "ZZZ|bad\rPV1|1|I\r"
    error = {"reason": "segment id is not valid", "segment": "ZZZ", "segmentIndex": 3, "field": None}
    ui.add(
        item("a-bad", "hospital-a", "failed", 1, raw="s3://lake/raw", error=error),
        {"s3://lake/raw": raw.encode()},
    )
    ui.login()
    page = ui.client.get("/ui/messages/a-bad").text
    start = page.index('id="segment-3"')
    highlighted = page[page.rindex("<tbody", 0, start) : page.index("</tbody>", start)]
    assert "highlighted" in highlighted and "segment id is not valid" in highlighted and "ZZZ" in highlighted
    other = page[page.index('id="segment-2"') - 60 : page.index('id="segment-2"')]
    assert "highlighted" not in other
    assert "PID-3" in page and "Patient Identifier List" in page  # names from MSH-12's version


def test_pages_carry_a_script_nonce_csp(ui: Dashboard) -> None:
    ui.login()
    response = ui.client.get("/ui")
    csp = response.headers["content-security-policy"]
    assert "script-src 'nonce-" in csp and "default-src 'none'" in csp
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'nonce="{nonce}"' in response.text


def test_stylesheet_is_served(ui: Dashboard) -> None:
    assert ui.client.get("/ui/static/ui.css").status_code == 200


def test_app_without_ui_services_has_no_dashboard() -> None:
    tokens = TokenFactory()
    jwks = Jwks("https://idp.test/jwks.json", http=httpx.Client(transport=tokens.jwks_transport()))
    services = GatewayServices(
        settings=GatewaySettings(),
        verifier=TokenVerifier(jwks, ISSUER, CLIENT_ID),
        ingest=IngestService(MemoryDedupStore(), MemoryHub()),
        reader=MemoryLakeReader(),
    )
    assert TestClient(create_app(services)).get("/ui/login").status_code == 404


def test_activity_buckets_the_last_hour() -> None:
    reader = MemoryLakeReader()
    for n, (minutes, status) in enumerate([(1, "parsed"), (2, "failed"), (59, "parsed"), (61, "parsed")]):
        reader.items[f"m{n}"] = item(f"m{n}", "hospital-a", status, minutes)
    chart = activity.last_hour(reader, ("hospital-a",), lambda: NOW)
    assert (chart.total, chart.failed, len(chart.bars)) == (3, 1, 12)
    assert (chart.bars[-1].received, chart.bars[-1].failed) == (2, 1) and chart.bars[0].received == 1
    assert activity.last_hour(reader, (), lambda: NOW).total == 0


class FakeSqs:
    def __init__(self) -> None:
        self.counts = {
            "q": {
                "ApproximateNumberOfMessages": "4",
                "ApproximateNumberOfMessagesNotVisible": "2",
                "ApproximateNumberOfMessagesDelayed": "1",
            },
            "dlq": {"ApproximateNumberOfMessages": "5"},
        }

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict:
        return {"Attributes": self.counts[QueueUrl]}


def test_sqs_queue_depths_adds_delayed_to_waiting_and_counts_dead_letters() -> None:
    [depth] = SqsQueueDepths(FakeSqs(), {"er7-staging": ("q", "dlq")}).depths()
    assert depth == QueueDepth("er7-staging", waiting=5, in_flight=2, dead_letters=5)


class FakeCognito:
    class exceptions:  # boto3 client shape
        class NotAuthorizedException(Exception):
            pass

        class UserNotFoundException(Exception):
            pass

    def __init__(self, answer: object) -> None:
        self.answer = answer
        self.calls: list[dict] = []

    def initiate_auth(self, **kwargs: object) -> dict:
        self.calls.append(kwargs)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer  # type: ignore[return-value]


def test_cognito_login_asks_for_user_password_auth_and_returns_the_id_token() -> None:
    cognito = FakeCognito({"AuthenticationResult": {"IdToken": "id-tok", "AccessToken": "acc-tok"}})
    assert CognitoPasswordLogin(cognito, "client-1").id_token("u", "p") == "id-tok"
    assert cognito.calls == [
        {
            "ClientId": "client-1",
            "AuthFlow": "USER_PASSWORD_AUTH",
            "AuthParameters": {"USERNAME": "u", "PASSWORD": "p"},
        }
    ]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (FakeCognito.exceptions.NotAuthorizedException(), LoginRefused),
        (FakeCognito.exceptions.UserNotFoundException(), LoginRefused),
        ({"ChallengeName": "NEW_PASSWORD_REQUIRED"}, LoginRefused),
        (ConnectionError("down"), LoginUnavailable),
    ],
)
def test_cognito_login_refusals(answer: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        CognitoPasswordLogin(FakeCognito(answer), "client-1").id_token("u", "p")
