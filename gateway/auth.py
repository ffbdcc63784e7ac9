"""Bearer-token verification against the Cognito user pool's JWKS (OIDC).

python-jose checks signature, issuer, audience and times; it accepts a token without `exp` unless
told to require it and never looks at Cognito's `token_use`, so both are checked here explicitly.

A sender reuses its token for up to an hour, so a verified token's principal is remembered
(VerifiedTokens) and the RSA key built from each JWK is kept (Jwks): the full check runs once per
token, not once per request.

A refusal says why in one of a fixed set of short reasons (`AuthError.description`, sent as RFC 6750's
`error_description`); a library's own message never reaches the sender. A header with `crit` is
refused: we implement no JWS extension, and RFC 7515 §4.1.11 forbids accepting one we do not know.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from jose import jwk, jwt
from jose.backends.base import Key
from jose.exceptions import ExpiredSignatureError, JOSEError, JWTClaimsError

log = logging.getLogger(__name__)


class AuthError(Exception):
    """401: the request did not prove who it is. `description` is one of our short fixed reasons."""

    def __init__(self, description: str) -> None:
        super().__init__(f"invalid token: {description}")
        self.description = description


# python-jose's message → our reason; the first needle found in the (lower-cased) message wins.
_JOSE_REASONS = (
    ("signature verification failed", "bad signature"),
    ("invalid issuer", "wrong issuer"),
    ("invalid audience", "wrong audience"),
    ("not yet valid", "token not yet valid"),
    ("issued at", "invalid claim (iat)"),
    ("expiration time", "invalid claim (exp)"),
    ("subject", "invalid claim (sub)"),
)
_MISSING_CLAIM = re.compile(r'missing required key "(exp|iat|sub)"')


def jose_reason(exc: JOSEError) -> str:
    """Our reason for a python-jose failure (its messages can quote token content)."""
    if isinstance(exc, ExpiredSignatureError):
        return "token expired"
    text = str(exc).lower()
    missing = _MISSING_CLAIM.search(text)
    if missing:
        return f"missing claim ({missing.group(1)})"
    for needle, reason in _JOSE_REASONS:
        if needle in text:
            return reason
    return "invalid claims" if isinstance(exc, JWTClaimsError) else "malformed token"


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
    """Keys by `kid`, fetched lazily, refreshed on an unknown kid (at most every `min_refresh` s).

    Each JWK is turned into an RSA key once per fetch: building one costs about as much as checking a
    signature with it.
    """

    def __init__(self, url: str, min_refresh: float = 30.0, http: httpx.Client | None = None) -> None:
        self._url = url
        self._keys: dict[str, dict[str, Any]] = {}
        self._built: dict[str, Key] = {}
        self._fetched_at = 0.0
        self._min_refresh = min_refresh
        self._http = http or httpx.Client(timeout=5.0)
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        response = self._http.get(self._url)
        response.raise_for_status()
        keys = {key["kid"]: key for key in response.json()["keys"]}
        self._built = {}  # first: `current` (lock-free) must not hand out a key the new set lacks
        self._keys = keys
        self._fetched_at = time.monotonic()

    def key(self, kid: str) -> Key:
        """The key for `kid`; may fetch the JWKS (blocking I/O)."""
        with self._lock:
            if kid not in self._keys and time.monotonic() - self._fetched_at >= self._min_refresh:
                self._refresh_or_refuse()
            built = self._built.get(kid)
            return built if built is not None else self._build(kid)

    def _refresh_or_refuse(self) -> None:
        try:
            self._refresh()
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("jwks fetch failed error=%s", exc.__class__.__name__)
            raise AuthError("signing keys unavailable") from exc
        if not self._keys:
            self._fetched_at = 0.0

    def _build(self, kid: str) -> Key:
        try:
            jwk_dict = self._keys[kid]
        except KeyError:
            raise AuthError("unknown key id (kid)") from None
        try:
            built = self._built[kid] = jwk.construct(jwk_dict, "RS256")
        except JOSEError:
            raise AuthError("unusable signing key") from None
        return built

    def current(self, kid: str) -> Key | None:
        """The key built for `kid` since the last fetch, if any; never fetches."""
        return self._built.get(kid)


@dataclass(frozen=True)
class VerifiedToken:
    """A token's principal, the key that verified its signature, and its `exp`."""

    principal: Principal
    kid: str
    key: Key
    expires_at: float


class VerifiedTokens:
    """Principals of tokens that passed the full check, each until its token's `exp`; bounded, LRU.

    Keyed by the SHA-256 of the whole token: an entry answers only for the identical token string (a
    token with the same claims and another signature is a miss and gets the full check), and the
    tokens themselves, which are bearer credentials, are not kept.
    """

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self._entries: OrderedDict[bytes, VerifiedToken] = OrderedDict()
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()

    @staticmethod
    def _digest(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, token: str) -> VerifiedToken | None:
        digest = self._digest(token)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if self._clock() >= entry.expires_at:
                del self._entries[digest]
                return None
            self._entries.move_to_end(digest)
            return entry

    def put(self, token: str, entry: VerifiedToken) -> None:
        if self._max_entries <= 0 or self._clock() >= entry.expires_at:
            return
        digest = self._digest(token)
        with self._lock:
            self._entries[digest] = entry
            self._entries.move_to_end(digest)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


UserAttributesLookup = Callable[[str], dict[str, str]]


class TokenVerifier:
    """Checks bearer tokens in full the first time they are seen, then answers from VerifiedTokens.

    A remembered answer is the one the full check would give again: it is used only before the token's
    `exp` (the clock-skew leeway applies to the full check alone, it never extends a remembered
    answer), and only while the JWKS still gives the very key object that verified it. After a JWKS
    fetch (an unknown kid) every token gets the full check once more, so one whose key left the set
    is refused from then on. Until such a fetch a withdrawn key is not noticed, with or without this
    cache. The same trade-off as API Gateway's authorizer cache, bounded by `exp` rather than a TTL.
    Access tokens' attributes (Cognito GetUser) are remembered the same way: a token revoked in
    Cognito keeps working until its `exp`.
    """

    def __init__(
        self,
        jwks: Jwks,
        issuer: str,
        client_id: str,
        user_attributes: UserAttributesLookup | None = None,
        leeway: int = 30,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._jwks = jwks
        self._issuer = issuer
        self._client_id = client_id
        self._user_attributes = user_attributes
        self._leeway = leeway
        self._verified = VerifiedTokens(cache_size, clock)

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified before and still valid; no I/O, no signature check."""
        entry = self._verified.get(token)
        if entry is None or self._jwks.current(entry.kid) is not entry.key:
            return None
        return entry.principal

    def verify(self, token: str) -> Principal:
        """Raises AuthError. A token not seen before may need the JWKS or Cognito: blocking I/O."""
        return self.cached(token) or self._verify_in_full(token)

    def _verify_in_full(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except JOSEError:
            raise AuthError("malformed token") from None
        if "crit" in header:
            raise AuthError("unsupported header (crit)")
        if header.get("alg") != "RS256":
            raise AuthError("algorithm must be RS256")
        kid = str(header.get("kid"))
        key = self._jwks.key(kid)
        claims = self._checked_claims(token, key)
        principal = self._principal(token, claims)
        self._verified.put(token, VerifiedToken(principal, kid, key, float(claims["exp"])))
        return principal

    def _checked_claims(self, token: str, key: Key) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
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
            raise AuthError(jose_reason(exc)) from None
        return claims

    def _principal(self, token: str, claims: dict[str, Any]) -> Principal:
        use = claims.get("token_use")
        if use == "id":
            if claims.get("aud") != self._client_id:
                raise AuthError("wrong audience")
            return Principal.from_attributes(
                claims["sub"], str(claims.get("cognito:username", claims["sub"])), "id", claims
            )
        if use == "access":
            if claims.get("client_id") != self._client_id:
                raise AuthError("wrong audience (issued to another client)")
            return self._access_principal(token, claims)
        raise AuthError("wrong token_use (must be id or access)")

    def _access_principal(self, token: str, claims: dict[str, Any]) -> Principal:
        # Access tokens carry no custom attributes: ask Cognito (GetUser).
        if self._user_attributes is None:
            raise AuthError("access tokens not accepted here, use an ID token")
        attrs = self._user_attributes(token)
        return Principal.from_attributes(
            claims["sub"], str(claims.get("username", claims["sub"])), "access", attrs
        )


def cognito_user_attributes(cognito: Any) -> UserAttributesLookup:
    def lookup(access_token: str) -> dict[str, str]:
        try:
            user = cognito.get_user(AccessToken=access_token)
        except cognito.exceptions.NotAuthorizedException:
            raise AuthError("access token revoked or expired") from None
        return {a["Name"]: a["Value"] for a in user["UserAttributes"]}

    return lookup
