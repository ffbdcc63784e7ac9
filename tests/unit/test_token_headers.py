"""Tokens and headers by the book: `crit` is refused (RFC 7515 §4.1.11); 401 challenges follow RFC 6750
with our own short reasons, never python-jose's messages."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import httpx
import pytest

from gateway.auth import AuthError, Jwks, TokenVerifier
from gateway.problems import missing_credentials, unauthorized
from tests.tokens import CLIENT_ID, ISSUER, TokenFactory
from tests.unit.test_gateway_api import ER7, MSG, Stack

CRIT = "unsupported header (crit)"
# RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E (no `"`, no `\`).
DESCRIPTION_CHARS = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
CHALLENGE = re.compile(r'Bearer realm="hl7lake", error="invalid_token", error_description="([^"]*)"')
JOSE_WORDS = ("Signature has expired", "Signature verification failed", "Invalid issuer", "missing required")


@pytest.fixture(scope="module")
def factory() -> TokenFactory:
    return TokenFactory()


def verifier(factory: TokenFactory) -> TokenVerifier:
    jwks = Jwks("https://idp.test/jwks.json", http=httpx.Client(transport=factory.jwks_transport()))
    return TokenVerifier(jwks, ISSUER, CLIENT_ID, lambda t: {}, leeway=0)


def refusal(v: TokenVerifier, token: str) -> str:
    with pytest.raises(AuthError) as exc:
        v.verify(token)
    return exc.value.description


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("crit", [["exp"], ["b64"], ["http://example.com/ext"], [], "exp", None])
def test_a_token_with_crit_is_refused(factory: TokenFactory, crit: Any) -> None:
    v = verifier(factory)
    token = factory.token(headers={"crit": crit, "exp": 1})
    assert refusal(v, token) == CRIT
    assert refusal(v, token) == CRIT  # never remembered as verified
    assert v.cached(token) is None


def test_crit_is_refused_before_the_signature_is_looked_at(factory: TokenFactory) -> None:
    header = b64({"alg": "RS256", "kid": factory.kid, "crit": ["exp"], "exp": 1})
    claims = factory.token().split(".")[1]
    assert refusal(verifier(factory), f"{header}.{claims}.c2lnbmF0dXJl") == CRIT


def test_the_token_cache_does_not_let_a_crit_token_through(factory: TokenFactory) -> None:
    v = verifier(factory)
    good = factory.token()
    v.verify(good)
    assert v.cached(good) is not None
    with_crit = factory.token(headers={"crit": ["exp"]})
    assert v.cached(with_crit) is None
    assert refusal(v, with_crit) == CRIT


@pytest.mark.parametrize(
    ("token_kwargs", "reason"),
    [
        ({"exp": int(time.time()) - 10}, "token expired"),
        ({"iss": "https://evil.example"}, "wrong issuer"),
        ({"aud": "another-client"}, "wrong audience"),
        ({"nbf": int(time.time()) + 600}, "token not yet valid"),
        ({"drop": ("exp",)}, "missing claim (exp)"),
        ({"drop": ("sub",)}, "missing claim (sub)"),
        ({"iat": "yesterday"}, "invalid claim (iat)"),
        ({"headers": {"kid": "rotated-away"}}, "unknown key id (kid)"),
    ],
)
def test_refusals_name_our_own_short_reason(factory: TokenFactory, token_kwargs: dict, reason: str) -> None:
    assert refusal(verifier(factory), factory.token(**token_kwargs)) == reason


def test_bad_signature_and_garbage_have_fixed_reasons(factory: TokenFactory) -> None:
    v = verifier(factory)
    assert refusal(v, TokenFactory(kid=factory.kid).token()) == "bad signature"
    assert refusal(v, "not-a-jwt") == "malformed token"
    header, claims, _ = factory.token().split(".")
    other_claims = factory.token(sub="user-2").split(".")[1]
    assert refusal(v, f"{header}.{other_claims}.{factory.token().split('.')[2]}") == "bad signature"
    assert refusal(v, f"{b64({'alg': 'none', 'kid': factory.kid})}.{claims}.") == "algorithm must be RS256"


def test_challenge_quotes_and_escapes_the_description() -> None:
    challenge = unauthorized('say "hi" \\ now\r\nX-Injected: 1').headers["WWW-Authenticate"]
    description = 'error_description="say \\"hi\\" \\\\ now??X-Injected: 1"'
    assert challenge == f'Bearer realm="hl7lake", error="invalid_token", {description}'
    assert missing_credentials().headers["WWW-Authenticate"] == 'Bearer realm="hl7lake"'


@pytest.mark.parametrize(
    ("token_kwargs", "reason"),
    [
        ({"headers": {"crit": ["exp"]}}, CRIT),
        ({"exp": int(time.time()) - 600}, "token expired"),  # beyond the gateway's clock-skew leeway
        ({"iss": "https://evil.example"}, "wrong issuer"),
    ],
)
def test_401_challenge_over_http_follows_rfc_6750(token_kwargs: dict, reason: str) -> None:
    stack = Stack()
    token = stack.tokens.token(**token_kwargs)
    response = stack.client.post(
        "/v1/messages", content=MSG, headers={**ER7, "Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    match = CHALLENGE.fullmatch(response.headers["WWW-Authenticate"])
    assert match is not None, response.headers["WWW-Authenticate"]
    assert match.group(1) == reason and DESCRIPTION_CHARS.fullmatch(reason)
    assert response.json()["message"] == reason
    assert not any(word.lower() in response.text.lower() for word in JOSE_WORDS)


def test_a_crit_token_is_refused_even_after_its_twin_without_crit_was_accepted() -> None:
    stack = Stack()
    assert stack.post().status_code == 202
    token = stack.tokens.token(headers={"crit": ["exp"]})
    for _ in range(2):
        response = stack.client.post(
            "/v1/messages", content=MSG, headers={**ER7, "Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401 and CRIT in response.headers["WWW-Authenticate"]
