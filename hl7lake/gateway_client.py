"""The gateway's HTTP API as the daily commands (send, ls, show, tail) reach it: URL and bearer token."""

from __future__ import annotations

import httpx


class ClientError(RuntimeError):
    """A one-line reason the command cannot go on (no token, gateway unreachable, refused)."""


def resolve_token(token: str | None, user: str) -> str:
    """The given token, else one for the dev `user` from the emulator's Cognito (as `hl7lake token`)."""
    if token:
        return token
    from hl7lake.emulator import use_local_emulator_by_default
    from hl7lake.tokens import TokenError, get_token

    use_local_emulator_by_default()
    try:
        return get_token(user)
    except TokenError as exc:
        raise ClientError(f"no token for {user}: {exc}") from None


def open_client(url: str, token: str, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=url.rstrip("/"),
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(30.0, connect=5.0),
        transport=transport,
    )


def problem_text(response: httpx.Response) -> str:
    """`STATUS code: message` from the gateway's JSON problem body (or the raw text)."""
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.text.strip()[:200]}"
    if isinstance(body, dict) and "error" in body:
        return f"{response.status_code} {body['error']}: {body.get('message', '')}"
    return f"{response.status_code} {str(body)[:200]}"
