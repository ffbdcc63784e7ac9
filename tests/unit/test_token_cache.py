"""The verified-token cache: a token is checked in full once, and a remembered answer never outlives
its token's `exp`, its signing key, or answers for any other token string."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from jose import jwk, jwt

from gateway import auth
from gateway.auth import AuthError, Jwks, Principal, TokenVerifier, VerifiedToken, VerifiedTokens
from tests.tokens import CLIENT_ID, ISSUER, TokenFactory


@pytest.fixture(scope="module")
def factory() -> TokenFactory:
    return TokenFactory()


class Clock:
    """Moves time for the cache and for python-jose's own `exp` check together."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = 0.0
        clock = self

        class ShiftedDatetime(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Any:
                return datetime.now(tz) + timedelta(seconds=clock.offset)

        monkeypatch.setattr("jose.jwt.datetime", ShiftedDatetime)

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


@pytest.fixture
def full_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token whose signature and claims were checked (python-jose's decode)."""
    checked: list[str] = []
    decode = jwt.decode

    def counting_decode(token: str, *args: Any, **kwargs: Any) -> Any:
        checked.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(auth.jwt, "decode", counting_decode)
    return checked


class JwksServer:
    """A JWKS endpoint whose key set the test can change (key rotation)."""

    def __init__(self, *factories: TokenFactory) -> None:
        self.factories = list(factories)

    def transport(self) -> httpx.MockTransport:
        def handler(_: httpx.Request) -> httpx.Response:
            keys = [
                {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.public_jwk.items()}
                for f in self.factories
            ]
            return httpx.Response(200, content=json.dumps({"keys": keys}))

        return httpx.MockTransport(handler)


def make_verifier(
    server: JwksServer,
    *,
    leeway: int = 0,
    cache_size: int = 10_000,
    clock: Any = time.time,
    lookup: Any = None,
) -> TokenVerifier:
    jwks = Jwks("https://idp.test/jwks.json", min_refresh=0, http=httpx.Client(transport=server.transport()))
    return TokenVerifier(jwks, ISSUER, CLIENT_ID, lookup, leeway=leeway, cache_size=cache_size, clock=clock)


def test_same_token_twice_is_checked_in_full_once(factory: TokenFactory, full_checks: list[str]) -> None:
    verifier = make_verifier(JwksServer(factory))
    token = factory.token()
    first = verifier.verify(token)
    assert verifier.verify(token) == first
    assert verifier.cached(token) == first
    assert full_checks == [token]


def test_unknown_token_is_not_cached(factory: TokenFactory) -> None:
    assert make_verifier(JwksServer(factory)).cached(factory.token()) is None


def test_same_claims_with_another_signature_is_refused(factory: TokenFactory) -> None:
    verifier = make_verifier(JwksServer(factory))
    now = int(time.time())
    claims = {"iat": now, "exp": now + 3600}
    genuine = factory.token(**claims)
    verifier.verify(genuine)
    forged = TokenFactory(kid=factory.kid).token(**claims)  # same header and payload, another key
    assert forged.rsplit(".", 1)[0] == genuine.rsplit(".", 1)[0] and forged != genuine
    assert verifier.cached(forged) is None
    with pytest.raises(AuthError, match="invalid token"):
        verifier.verify(forged)
    head_and_payload, signature = genuine.rsplit(".", 1)
    flipped = head_and_payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    with pytest.raises(AuthError, match="invalid token"):
        verifier.verify(flipped)
    assert verifier.verify(genuine).subject == "user-1"  # the genuine one still works


def test_cached_token_is_refused_once_expired(factory: TokenFactory, clock: Clock) -> None:
    verifier = make_verifier(JwksServer(factory), clock=clock)
    token = factory.token(exp=int(time.time()) + 60)
    verifier.verify(token)
    clock.offset = 61
    assert verifier.cached(token) is None
    with pytest.raises(AuthError, match="expired"):
        verifier.verify(token)


def test_leeway_never_extends_a_cached_answer(
    factory: TokenFactory, clock: Clock, full_checks: list[str]
) -> None:
    verifier = make_verifier(JwksServer(factory), leeway=30, clock=clock)
    token = factory.token(exp=int(time.time()) + 60)
    verifier.verify(token)
    clock.offset = 70  # past exp, within the leeway: every request gets the full check again
    assert verifier.cached(token) is None
    verifier.verify(token)
    verifier.verify(token)
    assert full_checks == [token] * 3
    clock.offset = 100
    with pytest.raises(AuthError, match="expired"):
        verifier.verify(token)


def test_cache_is_bounded_and_drops_the_least_recently_used(
    factory: TokenFactory, full_checks: list[str]
) -> None:
    verifier = make_verifier(JwksServer(factory), cache_size=2)
    first, second, third = (factory.token(sub=f"user-{i}") for i in range(3))
    verifier.verify(first)
    verifier.verify(second)
    verifier.verify(first)  # used again: `second` is now the oldest
    verifier.verify(third)
    assert verifier.cached(second) is None
    assert verifier.cached(first) is not None and verifier.cached(third) is not None
    assert full_checks == [first, second, third]


def test_verified_tokens_never_hold_more_than_their_bound() -> None:
    cache = VerifiedTokens(max_entries=100)
    principal = Principal("s", "u", ("a",), ("a",), "id")
    key = object()
    for i in range(1000):
        cache.put(f"token-{i}", VerifiedToken(principal, "kid", key, time.time() + 60))
    assert len(cache) == 100
    assert cache.get("token-0") is None and cache.get("token-999") is not None


def test_size_zero_turns_the_cache_off(factory: TokenFactory, full_checks: list[str]) -> None:
    verifier = make_verifier(JwksServer(factory), cache_size=0)
    token = factory.token()
    verifier.verify(token)
    verifier.verify(token)
    assert verifier.cached(token) is None
    assert full_checks == [token, token]


def test_token_whose_key_left_the_jwks_is_refused_after_the_next_fetch(factory: TokenFactory) -> None:
    successor = TokenFactory(kid="key-2")
    server = JwksServer(factory)
    verifier = make_verifier(server)
    old = factory.token()
    verifier.verify(old)
    server.factories = [successor]  # the IdP rotates key-1 out
    assert verifier.verify(old).subject == "user-1"  # not known until the JWKS is fetched again
    verifier.verify(successor.token())  # an unknown kid: the gateway fetches the JWKS
    assert verifier.cached(old) is None
    with pytest.raises(AuthError, match="unknown key"):
        verifier.verify(old)


def test_kept_key_is_checked_again_once_after_a_fetch(factory: TokenFactory, full_checks: list[str]) -> None:
    successor = TokenFactory(kid="key-2")
    server = JwksServer(factory, successor)
    verifier = make_verifier(server)
    token = factory.token()
    verifier.verify(token)
    with pytest.raises(AuthError, match="unknown key"):
        verifier.verify(TokenFactory(kid="key-3").token())  # forces a fetch; key-1 is still there
    verifier.verify(token)
    verifier.verify(token)
    assert full_checks.count(token) == 2  # once before the fetch, once after


def test_rsa_key_is_built_once_per_kid(factory: TokenFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = [factory.token(sub=f"user-{i}") for i in range(3)]  # signing builds keys too: before counting
    built: list[Any] = []
    construct = jwk.construct

    def counting_construct(data: Any, algorithm: str | None = None) -> Any:
        built.append(data)
        return construct(data, algorithm)

    monkeypatch.setattr(auth.jwk, "construct", counting_construct)
    verifier = make_verifier(JwksServer(factory), cache_size=0)
    for token in tokens:
        verifier.verify(token)
    assert [data["kid"] for data in built] == [factory.kid]


def test_access_token_attributes_are_looked_up_once(factory: TokenFactory) -> None:
    lookups: list[str] = []

    def lookup(token: str) -> dict[str, str]:
        lookups.append(token)
        return {"custom:write": "hospital-b"}

    verifier = make_verifier(JwksServer(factory), lookup=lookup)
    token = factory.token(token_use="access", username="x")
    assert verifier.verify(token).write == ("hospital-b",)
    assert verifier.cached(token) == verifier.verify(token)
    assert lookups == [token]


def test_refused_tokens_are_not_remembered(factory: TokenFactory, full_checks: list[str]) -> None:
    verifier = make_verifier(JwksServer(factory))
    token = factory.token(aud="another-client")
    for _ in range(2):
        with pytest.raises(AuthError, match="audience"):
            verifier.verify(token)
    assert full_checks == [token, token]
