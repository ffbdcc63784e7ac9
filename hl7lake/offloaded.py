"""Resources whose service another emulator serves than the one running CloudFormation.

In the LocalStack hybrid (docs/decisions/0011) LocalStack runs CloudFormation, S3, SNS and SQS, while
DynamoDB (LocalStack's needs a Java jar downloaded at run time) and Cognito (not in its free
edition) come from moto, reached through boto3's per-service endpoints. LocalStack's CloudFormation
would create a table in its own DynamoDB and fail. So, before a stack is deployed, the resources of
those services are created here through their own endpoints, dropped from the template sent to
CloudFormation, and every `Ref`/`GetAtt` to them replaced by the values they got.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
from typing import Any

from hl7lake.emulator_gaps import Clients, create_resource
from hl7lake.intrinsics import StackContext, resolve

# CloudFormation type prefix -> the boto3 service whose endpoint serves it
_SERVICES = {"AWS::DynamoDB::": "dynamodb", "AWS::Cognito::": "cognito-idp"}


def _endpoint(service: str) -> str:
    # boto3's own endpoint variables, read as boto3 reads them (not settings of ours)
    specific = os.environ.get(f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}")
    return specific or os.environ.get("AWS_ENDPOINT_URL") or ""


def offloaded_services() -> set[str]:
    """boto3 services served elsewhere than CloudFormation (empty on AWS and on one emulator)."""
    cloudformation = _endpoint("cloudformation")
    return {s for s in _SERVICES.values() if cloudformation and _endpoint(s) != cloudformation}


def offloaded_resources(template: dict[str, Any], services: set[str]) -> list[str]:
    """Logical ids of the template's resources served by `services`, in template order."""
    return [
        logical
        for logical, resource in template["Resources"].items()
        if any(resource["Type"].startswith(p) and s in services for p, s in _SERVICES.items())
    ]


def _arn(kind: str, physical: str, ctx: StackContext) -> str:
    region, account = ctx.parameters["AWS::Region"], ctx.parameters["AWS::AccountId"]
    if kind == "AWS::DynamoDB::Table":
        return f"arn:aws:dynamodb:{region}:{account}:table/{physical}"
    if kind == "AWS::Cognito::UserPool":
        return f"arn:aws:cognito-idp:{region}:{account}:userpool/{physical}"
    raise LookupError(f"no Arn for {kind}")


def _substitute(value: Any, ids: dict[str, str], arns: dict[str, str]) -> Any:
    if isinstance(value, list):
        return [_substitute(v, ids, arns) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and arg in ids:
            return ids[arg]
        if key == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            if logical in ids and attribute == "Arn":
                return arns[logical]
        if key == "Fn::Sub" and isinstance(arg, str):
            return {key: _substitute_sub(arg, ids, arns)}
    return {k: _substitute(v, ids, arns) for k, v in value.items()}


def _substitute_sub(text: str, ids: dict[str, str], arns: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in ids:
            return ids[name]
        if name.endswith(".Arn") and name[:-4] in arns:
            return arns[name[:-4]]
        return match.group(0)

    return re.sub(r"\$\{([^}!]+)\}", replace, text)


def deploy_offloaded(
    template: dict[str, Any], ctx: StackContext, clients: Clients, services: set[str]
) -> dict[str, Any]:
    """Creates the template's resources of `services` through their own endpoints (idempotent) and
    returns the template CloudFormation deploys: without them, their references resolved."""
    logicals = offloaded_resources(template, services)
    if not logicals:
        return template
    ids: dict[str, str] = {}
    arns: dict[str, str] = {}
    for logical in logicals:
        resource = template["Resources"][logical]
        props = resolve(resource.get("Properties", {}), ctx)
        ids[logical] = ctx.physical_ids[logical] = create_resource(clients, resource["Type"], props)
        with contextlib.suppress(LookupError):
            arns[logical] = _arn(resource["Type"], ids[logical], ctx)
    reduced = copy.deepcopy(template)
    for logical in logicals:
        del reduced["Resources"][logical]
    return _substitute(reduced, ids, arns)  # type: ignore[no-any-return]
