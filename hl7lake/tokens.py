"""`hl7lake token`: a bearer token from the Cognito API (USER_PASSWORD_AUTH)."""

from __future__ import annotations

from gateway.config import GatewaySettings
from hl7lake.devusers import password_for
from hub import aws
from hub.cognito import cognito_endpoint, find_client, find_user_pool


class TokenError(RuntimeError):
    pass


def get_token(user: str, password: str | None = None, *, access: bool = False) -> str:
    settings = GatewaySettings()
    password = password or password_for(user)
    if not password:
        raise TokenError(f"no password given and {user!r} is not in the dev users file; pass --password")
    cognito = aws.client("cognito-idp", settings.region)
    try:
        pool_id = settings.user_pool_id or find_user_pool(cognito, settings.user_pool)
        client_id = settings.client_id or find_client(cognito, pool_id, settings.client_name)
        result = cognito.initiate_auth(
            ClientId=client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": user, "PASSWORD": password},
        )["AuthenticationResult"]
    except LookupError as exc:
        raise TokenError(str(exc)) from None
    except (cognito.exceptions.NotAuthorizedException, cognito.exceptions.UserNotFoundException):
        raise TokenError(f"wrong user name or password for {user!r}") from None
    except Exception as exc:
        endpoint = cognito_endpoint() or "AWS"
        raise TokenError(
            f"identity provider at {endpoint} unreachable ({exc.__class__.__name__}): is `make up` running?"
            " (set HL7LAKE_EMULATOR_PORT when it runs on another port)"
        ) from None
    return str(result["AccessToken" if access else "IdToken"])
