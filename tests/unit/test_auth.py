"""Token verification: every way a bearer token can be wrong is refused, with the reason."""

from __future__ import annotations

import time

import httpx
import pytest

from gateway.auth import AuthError, Jwks, TokenVerifier
from tests.tokens import CLIENT_ID, ISSUER, TokenFactory


@pytest.fixture(scope="module")
def factory() -> TokenFactory:
    return TokenFactory()


def verifier(factory: TokenFactory, lookup=None) -> TokenVerifier:
    jwks = Jwks(
        "https://idp.test/jwks.json", min_refresh=0, http=httpx.Client(transport=factory.jwks_transport())
    )
    return TokenVerifier(jwks, ISSUER, CLIENT_ID, lookup, leeway=0)


def test_valid_id_token_gives_institutions(factory: TokenFactory) -> None:
    principal = verifier(factory).verify(factory.token(**{"custom:write": "a, b", "custom:read": "a,b,c"}))
    assert principal.write == ("a", "b")
    assert principal.read == ("a", "b", "c")
    assert principal.token_use == "id"


def test_access_token_attributes_come_from_user_lookup(factory: TokenFactory) -> None:
    calls = []

    def lookup(token: str) -> dict[str, str]:
        calls.append(token)
        return {"custom:write": "hospital-b", "custom:read": "hospital-b"}

    v = verifier(factory, lookup)
    token = factory.token(token_use="access", username="x")
    assert v.verify(token).write == ("hospital-b",)
    assert v.verify(token).read == ("hospital-b",)
    assert len(calls) == 1  # cached until the token expires


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"exp": int(time.time()) - 10}, "expired"),
        ({"drop": ("exp",)}, "exp"),
        ({"nbf": int(time.time()) + 600}, "not yet valid"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"aud": "another-client"}, "audience"),
        ({"token_use": "refresh"}, "token_use"),
        ({"drop": ("token_use",)}, "token_use"),
        ({"token_use": "access", "client_id": "another-client"}, "another client"),
    ],
)
def test_bad_claims_are_refused(factory: TokenFactory, kwargs: dict, reason: str) -> None:
    v = verifier(factory, lambda t: {})
    with pytest.raises(AuthError) as exc:
        v.verify(factory.token(**kwargs))
    assert reason.lower() in exc.value.description.lower()


def test_signature_from_another_key_is_refused(factory: TokenFactory) -> None:
    forger = TokenFactory(kid=factory.kid)  # same kid, different key
    with pytest.raises(AuthError, match="invalid token"):
        verifier(factory).verify(forger.token())


def test_non_rs256_and_garbage_are_refused(factory: TokenFactory) -> None:
    from jose import jwt

    hs = jwt.encode(
        {"sub": "x", "token_use": "id"}, "secret", algorithm="HS256", headers={"kid": factory.kid}
    )
    v = verifier(factory)
    with pytest.raises(AuthError, match="RS256"):
        v.verify(hs)
    with pytest.raises(AuthError, match="malformed"):
        v.verify("not-a-jwt")


def test_unknown_kid_refreshes_keys_once(factory: TokenFactory) -> None:
    v = verifier(factory)
    before = factory.jwks_requests
    v.verify(factory.token())
    v.verify(factory.token())
    assert factory.jwks_requests == before + 1  # cached
    with pytest.raises(AuthError, match="unknown key"):
        v.verify(factory.token(headers={"kid": "rotated-away"}))
    assert factory.jwks_requests == before + 2  # refreshed on the unknown kid


def test_access_token_without_lookup_is_refused(factory: TokenFactory) -> None:
    with pytest.raises(AuthError, match="ID token"):
        verifier(factory).verify(factory.token(token_use="access"))


def test_jwks_entry_that_is_not_an_rsa_key_is_refused(factory: TokenFactory) -> None:
    import json

    def handler(request: httpx.Request) -> httpx.Response:
        ec_key = {"kty": "EC", "kid": factory.kid, "crv": "P-256", "x": "AA", "y": "AA"}
        return httpx.Response(200, content=json.dumps({"keys": [ec_key]}))

    jwks = Jwks("https://idp.test/jwks.json", http=httpx.Client(transport=httpx.MockTransport(handler)))
    with pytest.raises(AuthError, match="invalid token"):
        TokenVerifier(jwks, ISSUER, CLIENT_ID, leeway=0).verify(factory.token())
