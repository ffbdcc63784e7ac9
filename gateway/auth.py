"""Bearer-token verification against the Cognito user pool's JWKS (OIDC).

python-jose checks signature, issuer, audience and times; it accepts a token without `exp` unless
told to require it and never looks at Cognito's `token_use`, so both are checked here explicitly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from jose import jwt
from jose.exceptions import JOSEError

log = logging.getLogger(__name__)


class AuthError(Exception):
    """401: the request did not prove who it is."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def _institutions(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


@dataclass(frozen=True)
class Principal:
    subject: str
    username: str
    write: tuple[str, ...]
    read: tuple[str, ...]
    token_use: str

    @classmethod
    def from_attributes(cls, subject: str, username: str, token_use: str, attrs: dict[str, str]) -> Principal:
        return cls(
            subject=subject,
            username=username,
            write=_institutions(attrs.get("custom:write")),
            read=_institutions(attrs.get("custom:read")),
            token_use=token_use,
        )


class Jwks:
    """Keys by `kid`, fetched lazily, refreshed on an unknown kid (at most every `min_refresh` s)."""

    def __init__(self, url: str, min_refresh: float = 30.0, http: httpx.Client | None = None) -> None:
        self._url = url
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = 0.0
        self._min_refresh = min_refresh
        self._http = http or httpx.Client(timeout=5.0)
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        response = self._http.get(self._url)
        response.raise_for_status()
        self._keys = {key["kid"]: key for key in response.json()["keys"]}
        self._fetched_at = time.monotonic()

    def key(self, kid: str) -> dict[str, Any]:
        with self._lock:
            if kid not in self._keys and time.monotonic() - self._fetched_at >= self._min_refresh:
                try:
                    self._refresh()
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    log.warning("jwks fetch failed error=%s", exc.__class__.__name__)
                    raise AuthError("signing keys unavailable") from exc
                if not self._keys:
                    self._fetched_at = 0.0
            try:
                return self._keys[kid]
            except KeyError:
                raise AuthError("token signed with an unknown key") from None


UserAttributesLookup = Callable[[str], dict[str, str]]


class TokenVerifier:
    def __init__(
        self,
        jwks: Jwks,
        issuer: str,
        client_id: str,
        user_attributes: UserAttributesLookup | None = None,
        leeway: int = 30,
    ) -> None:
        self._jwks = jwks
        self._issuer = issuer
        self._client_id = client_id
        self._user_attributes = user_attributes
        self._leeway = leeway
        self._access_cache: dict[str, tuple[float, Principal]] = {}

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except JOSEError:
            raise AuthError("malformed token") from None
        if header.get("alg") != "RS256":
            raise AuthError("token algorithm must be RS256")
        key = self._jwks.key(str(header.get("kid")))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=self._issuer,
                options={
                    "verify_aud": False,  # checked below: `aud` for ID tokens, `client_id` for access
                    "require_exp": True,
                    "require_iat": True,
                    "require_sub": True,
                    "leeway": self._leeway,
                },
            )
        except JOSEError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        use = claims.get("token_use")
        if use == "id":
            if claims.get("aud") != self._client_id:
                raise AuthError("token audience is not this application")
            return Principal.from_attributes(
                claims["sub"], str(claims.get("cognito:username", claims["sub"])), "id", claims
            )
        if use == "access":
            if claims.get("client_id") != self._client_id:
                raise AuthError("token was issued to another client")
            return self._access_principal(token, claims)
        raise AuthError("token_use must be 'id' or 'access'")

    def _access_principal(self, token: str, claims: dict[str, Any]) -> Principal:
        # Access tokens carry no custom attributes: ask Cognito (GetUser), cached until expiry.
        cached = self._access_cache.get(token)
        if cached and cached[0] > time.time():
            return cached[1]
        if self._user_attributes is None:
            raise AuthError("access tokens are not accepted here; use an ID token")
        attrs = self._user_attributes(token)
        principal = Principal.from_attributes(
            claims["sub"], str(claims.get("username", claims["sub"])), "access", attrs
        )
        if len(self._access_cache) > 10_000:
            self._access_cache.clear()
        self._access_cache[token] = (float(claims["exp"]), principal)
        return principal


def cognito_user_attributes(cognito: Any) -> UserAttributesLookup:
    def lookup(access_token: str) -> dict[str, str]:
        try:
            user = cognito.get_user(AccessToken=access_token)
        except cognito.exceptions.NotAuthorizedException:
            raise AuthError("access token revoked or expired") from None
        return {a["Name"]: a["Value"] for a in user["UserAttributes"]}

    return lookup
