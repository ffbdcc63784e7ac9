"""FastAPI dependencies (Annotated aliases used by the routers).

Both are `async def` so FastAPI calls them on the event loop: a plain `def` dependency costs a
thread-pool round trip per request, several times what they do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.auth import AuthError, Principal
from gateway.problems import missing_credentials, unauthorized
from gateway.services import GatewayServices


async def get_services(request: Request) -> GatewayServices:
    services: GatewayServices = request.app.state.services
    return services


Services = Annotated[GatewayServices, Depends(get_services)]


# Declares the bearer scheme in the OpenAPI document (the Authorize button of /docs) and decides
# nothing: with auto_error=True it would answer a missing or malformed header its own way, not with
# our RFC 6750 problems, so bearer_token below still checks the header itself.
bearer_scheme = HTTPBearer(
    auto_error=False, bearerFormat="JWT", description="A Cognito ID or access token of this user pool."
)


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise missing_credentials()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("Authorization must be 'Bearer <token>'")
    return token.strip()


async def get_principal(
    request: Request,
    services: Services,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> Principal:
    token = bearer_token(request.headers.get("authorization"))
    verifier = services.verifier
    # A token verified before is answered from memory, on the event loop. A new one may need the JWKS
    # (unknown kid) or Cognito (access token): blocking I/O, so it is checked in a worker thread.
    principal = verifier.cached(token)
    if principal is not None:
        return principal
    try:
        return await run_in_threadpool(verifier.verify, token)
    except AuthError as exc:
        raise unauthorized(exc.description) from None


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
