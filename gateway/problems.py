"""Errors the front door answers with: an HTTP status plus a JSON body that says what to fix."""

from __future__ import annotations

from typing import Any

from hub.er7 import ErrorCondition


class Problem(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        condition: ErrorCondition | None = None,
    ) -> None:
        super().__init__(message)
        self.condition = condition  # an unreadable message: what its ACK's ERR segment says
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}


def _quoted(value: str) -> str:
    """An RFC 7230 quoted-string: `"` and `\\` escaped, anything but printable ASCII replaced by `?`."""
    printable = "".join(c if " " <= c <= "~" else "?" for c in value)
    return '"' + printable.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bearer_challenge(**params: str) -> str:
    """`WWW-Authenticate` for RFC 6750 (Bearer): realm first, then the given parameters."""
    return "Bearer " + ", ".join(
        f"{name}={_quoted(value)}" for name, value in {"realm": "hl7lake", **params}.items()
    )


def unauthorized(description: str) -> Problem:
    challenge = bearer_challenge(error="invalid_token", error_description=description)
    return Problem(401, "unauthorized", description, headers={"WWW-Authenticate": challenge})


def missing_credentials() -> Problem:
    # RFC 6750 §3.1: a request without credentials gets no error code.
    return Problem(
        401,
        "unauthorized",
        "missing bearer token: send 'Authorization: Bearer <token>' (see `hl7lake token`)",
        headers={"WWW-Authenticate": bearer_challenge()},
    )


def unavailable(what: str, retry_after: int = 5) -> Problem:
    return Problem(
        503,
        "unavailable",
        f"{what}; not acknowledged: retry the same request later (a retry never stores it twice)",
        headers={"Retry-After": str(retry_after)},
    )


def in_progress(message_id: str, retry_after: int = 2) -> Problem:
    """The same message is held by another request, or by one that was interrupted: ask again shortly."""
    return Problem(
        503,
        "in_progress",
        "the same message is being accepted by another request, or one that was interrupted; it may "
        f"already be in the hub. Retry in {retry_after} s: the answer will then be final (accepted or "
        "duplicate), under the same id",
        details={"id": message_id},
        headers={"Retry-After": str(retry_after)},
    )


def internal_error(error_id: str) -> Problem:
    """A defect on our side: retrying the same bytes will not help until it is fixed (no Retry-After)."""
    return Problem(
        500,
        "internal",
        f"unexpected error on our side, not in your message; not acknowledged (error id {error_id})",
        details={"errorId": error_id},
    )


def not_found(message_id: str) -> Problem:
    return Problem(404, "not_found", f"no message {message_id!r} visible to you")
