"""Test helper: an RSA key pair, its JWKS, and Cognito-shaped tokens signed with it."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk, jwt

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_test"
CLIENT_ID = "client-123"


class TokenFactory:
    def __init__(self, kid: str = "key-1") -> None:
        self.kid = kid
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        public_pem = (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        self.public_jwk = {**jwk.construct(public_pem, "RS256").to_dict(), "kid": kid, "use": "sig"}
        self.jwks_requests = 0

    def jwks_transport(self) -> httpx.MockTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            self.jwks_requests += 1
            body = {
                "keys": [{k: (v.decode() if isinstance(v, bytes) else v) for k, v in self.public_jwk.items()}]
            }
            return httpx.Response(200, content=json.dumps(body))

        return httpx.MockTransport(handler)

    def token(
        self,
        *,
        token_use: str = "id",
        drop: tuple[str, ...] = (),
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": ISSUER,
            "sub": "user-1",
            "token_use": token_use,
            "iat": now,
            "exp": now + 3600,
            "cognito:username": "sender@hospital-a.example",
            "custom:write": "hospital-a",
            "custom:read": "hospital-a",
        }
        body["aud" if token_use == "id" else "client_id"] = CLIENT_ID
        body.update(claims)
        for name in drop:
            body.pop(name, None)
        return str(
            jwt.encode(
                body, self.private_pem, algorithm="RS256", headers={"kid": self.kid, **(headers or {})}
            )
        )
