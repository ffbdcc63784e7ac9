"""FastAPI dependencies (Annotated aliases used by the routers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from gateway.auth import AuthError, Principal
from gateway.problems import missing_credentials, unauthorized
from gateway.services import GatewayServices


def get_services(request: Request) -> GatewayServices:
    services: GatewayServices = request.app.state.services
    return services


Services = Annotated[GatewayServices, Depends(get_services)]


def get_principal(
    services: Services,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    if not authorization:
        raise missing_credentials()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("Authorization must be 'Bearer <token>'")
    try:
        return services.verifier.verify(token.strip())
    except AuthError as exc:
        raise unauthorized(exc.description) from None


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
