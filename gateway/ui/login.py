"""Username and password → Cognito ID token (InitiateAuth, USER_PASSWORD_AUTH), as `hl7lake token` does."""

from __future__ import annotations

import logging
from typing import Any, Protocol

log = logging.getLogger(__name__)


class LoginRefused(Exception):
    """Wrong user name or password (the message is safe to show)."""


class LoginUnavailable(Exception):
    """The identity provider could not be asked."""


class PasswordLogin(Protocol):
    def id_token(self, username: str, password: str) -> str: ...


class CognitoPasswordLogin:
    def __init__(self, cognito: Any, client_id: str) -> None:
        self._cognito = cognito
        self._client_id = client_id

    def id_token(self, username: str, password: str) -> str:
        errors = self._cognito.exceptions
        try:
            result = self._cognito.initiate_auth(
                ClientId=self._client_id,
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": username, "PASSWORD": password},
            )
        except (errors.NotAuthorizedException, errors.UserNotFoundException):
            raise LoginRefused("wrong user name or password") from None
        except Exception as exc:
            log.warning("ui login: identity provider unavailable error=%s", exc.__class__.__name__)
            raise LoginUnavailable("the identity provider is unavailable; try again") from None
        token = result.get("AuthenticationResult", {}).get("IdToken")
        if not token:  # a challenge (new password, MFA): not supported by the dashboard
            raise LoginRefused("this account needs a step the dashboard does not support")
        return str(token)
