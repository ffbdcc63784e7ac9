"""The dashboard's session: the verified Cognito ID token in an HttpOnly, SameSite=Strict cookie."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool

from gateway.auth import AuthError, Principal, TokenVerifier

COOKIE = "hl7lake_ui"
COOKIE_PATH = "/ui"
ID_TOKEN = "id"  # noqa: S105 (a token_use value, not a secret)


async def verified_principal(verifier: TokenVerifier, token: str) -> Principal | None:
    """The token's principal, checked by the same verifier as the API's bearer tokens; None if refused."""
    principal = verifier.cached(token)
    if principal is not None:
        return principal
    try:
        return await run_in_threadpool(verifier.verify, token)
    except AuthError:
        return None


async def session_principal(request: Request, verifier: TokenVerifier) -> Principal | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    principal = await verified_principal(verifier, token)
    # Only ID tokens open a session: the login stores one, and its claims carry the read scope.
    return principal if principal is not None and principal.token_use == ID_TOKEN else None


def keep_session(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def end_session(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
