"""Look-ups of the Cognito user pool and app client by name, shared by the front door's start-up and
the composition root (provisioning, emulator gap-filling, tokens)."""

from __future__ import annotations

import os
from typing import Any


def cognito_endpoint() -> str | None:
    # boto3's own endpoint variables, read as boto3 reads them (not settings of ours)
    return os.environ.get("AWS_ENDPOINT_URL_COGNITO_IDP") or os.environ.get("AWS_ENDPOINT_URL")


def find_user_pool(cognito: Any, name: str) -> str:
    for page in cognito.get_paginator("list_user_pools").paginate(MaxResults=60):
        for pool in page["UserPools"]:
            if pool["Name"] == name:
                return str(pool["Id"])
    raise LookupError(f"Cognito user pool {name!r} not found: run `hl7lake bootstrap` first")


def find_client(cognito: Any, pool_id: str, name: str) -> str:
    for page in cognito.get_paginator("list_user_pool_clients").paginate(UserPoolId=pool_id, MaxResults=60):
        for client in page["UserPoolClients"]:
            if client["ClientName"] == name:
                return str(client["ClientId"])
    raise LookupError(f"Cognito app client {name!r} not found in {pool_id}: run `hl7lake bootstrap` first")
