"""Clock skew between the identity provider and us: 30 s of leeway on `exp` by default, no more.

A token that expired 29 s ago is still accepted; one that expired 31 s ago is refused. Checked on the
verifier the gateway really builds from default settings, and on TokenVerifier's own default.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from moto import mock_aws

from gateway import bootstrap
from gateway.auth import AuthError, Jwks, TokenVerifier
from gateway.config import GatewaySettings
from tests.tokens import CLIENT_ID, ISSUER, TokenFactory

JWKS_URL = "https://idp.test/jwks.json"


@pytest.fixture(scope="module")
def factory() -> TokenFactory:
    return TokenFactory()


def _jwks(factory: TokenFactory) -> Callable[..., Jwks]:
    return lambda url, **_: Jwks(url, http=httpx.Client(transport=factory.jwks_transport()))


@pytest.fixture
def gateway_verifier(factory: TokenFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenVerifier]:
    """The verifier build_services makes from default settings (identity and hub named, so no lookups)."""
    monkeypatch.delenv("HL7LAKE_CLOCK_SKEW_SECONDS", raising=False)
    monkeypatch.setattr(bootstrap, "Jwks", _jwks(factory))  # only the JWKS transport is swapped
    settings = GatewaySettings(
        topic_arn="arn:aws:sns:us-east-1:123456789012:hub",
        user_pool_id="us-east-1_test",
        client_id=CLIENT_ID,
        oidc_issuer=ISSUER,
        jwks_url=JWKS_URL,
        max_backlog=0,
    )
    with mock_aws():
        yield bootstrap.build_services(settings).verifier


def _expired(factory: TokenFactory, seconds_ago: int) -> str:
    now = int(time.time())
    return factory.token(iat=now - 3600, exp=now - seconds_ago)


def test_the_default_setting_is_30_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HL7LAKE_CLOCK_SKEW_SECONDS", raising=False)
    assert GatewaySettings().clock_skew_seconds == 30


def test_gateway_refuses_a_token_expired_31_seconds_ago(
    factory: TokenFactory, gateway_verifier: TokenVerifier
) -> None:
    with pytest.raises(AuthError, match=r"(?i)expired"):
        gateway_verifier.verify(_expired(factory, 31))


def test_gateway_accepts_a_token_expired_29_seconds_ago(
    factory: TokenFactory, gateway_verifier: TokenVerifier
) -> None:
    assert gateway_verifier.verify(_expired(factory, 29)).write == ("hospital-a",)


def test_gateway_refuses_a_token_expired_an_hour_ago(
    factory: TokenFactory, gateway_verifier: TokenVerifier
) -> None:
    with pytest.raises(AuthError, match=r"(?i)expired"):
        gateway_verifier.verify(_expired(factory, 3600))


def test_token_verifier_default_leeway_is_the_same(factory: TokenFactory) -> None:
    verifier = TokenVerifier(_jwks(factory)(JWKS_URL), ISSUER, CLIENT_ID)
    assert verifier.verify(_expired(factory, 29)).read == ("hospital-a",)
    with pytest.raises(AuthError, match=r"(?i)expired"):
        verifier.verify(_expired(factory, 31))
