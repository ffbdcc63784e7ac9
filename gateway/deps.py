"""FastAPI dependencies (Annotated aliases used by the routers).

Both are `async def` so FastAPI calls them on the event loop: a plain `def` dependency costs a
thread-pool round trip per request, several times what they do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool

from gateway.auth import AuthError, Principal
from gateway.problems import missing_credentials, unauthorized
from gateway.services import GatewayServices


async def get_services(request: Request) -> GatewayServices:
    services: GatewayServices = request.app.state.services
    return services


Services = Annotated[GatewayServices, Depends(get_services)]


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise missing_credentials()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("Authorization must be 'Bearer <token>'")
    return token.strip()


async def get_principal(
    services: Services,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    token = bearer_token(authorization)
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
