"""`hl7lake bootstrap`: deploys the CloudFormation stacks in `stacks/` (the one definition of the
infrastructure), fills what an emulator's CloudFormation skips, and seeds the dev users. Idempotent.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from gateway.config import GatewaySettings
from hl7lake.devusers import DevUser, load_dev_users
from hl7lake.emulator_gaps import Clients, fill_gaps
from hl7lake.import_check import check_imports
from hl7lake.intrinsics import StackContext
from hl7lake.offloaded import deploy_offloaded, offloaded_services
from hl7lake.templates import STACKS, load_template
from hub import aws
from hub.cognito import find_client, find_user_pool
from hub.topology import SUBSCRIPTIONS

log = logging.getLogger(__name__)


@dataclass
class ProvisionResult:
    topic_arn: str
    queues: dict[str, str]
    user_pool_id: str
    client_id: str
    users: list[str]
    stacks: list[str]


def stack_name(prefix: str, name: str) -> str:
    return f"{prefix}-{name}"


def emulated() -> bool:
    """True when AWS calls go to an emulator (moto, LocalStack) rather than AWS itself."""
    # boto3's own endpoint variables, read as boto3 reads them (not settings of ours)
    return bool(os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_CLOUDFORMATION"))


def _wait(cf: Any, name: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = cf.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
        if status.endswith("_COMPLETE") and "ROLLBACK" not in status:
            return
        if status.endswith(("_FAILED", "ROLLBACK_COMPLETE")):
            raise RuntimeError(f"stack {name} ended in {status}")
        time.sleep(1 if emulated() else 5)
    raise TimeoutError(f"stack {name} not complete after {timeout:.0f}s")


def deploy_stack(cf: Any, name: str, template: dict[str, Any], parameters: dict[str, str]) -> None:
    declared = template.get("Parameters", {})
    params = [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items() if k in declared]
    # JSON, not the YAML file: identical template data, and emulators parse JSON more faithfully.
    body = json.dumps(template)
    kwargs = {
        "StackName": name,
        "TemplateBody": body,
        "Parameters": params,
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    }
    try:
        cf.describe_stacks(StackName=name)
        exists = True
    except cf.exceptions.ClientError:
        exists = False
    if not exists:
        cf.create_stack(**kwargs)
    else:
        try:
            cf.update_stack(**kwargs)
        except cf.exceptions.ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
    _wait(cf, name)


def _get_att(clients: Clients) -> Any:
    def get_att(kind: str, physical: str, attribute: str) -> str:
        if attribute == "Arn":
            if kind == "AWS::SQS::Queue":
                attrs = clients("sqs").get_queue_attributes(QueueUrl=physical, AttributeNames=["QueueArn"])
                return str(attrs["Attributes"]["QueueArn"])
            if kind == "AWS::S3::Bucket":
                return f"arn:aws:s3:::{physical}"
            if kind == "AWS::DynamoDB::Table":
                return str(clients("dynamodb").describe_table(TableName=physical)["Table"]["TableArn"])
            if kind == "AWS::SNS::Topic":
                return physical
        raise LookupError(f"cannot resolve {kind}.{attribute}")

    return get_att


def stack_context(
    clients: Clients,
    name: str,
    template: dict[str, Any],
    parameters: dict[str, str],
    region: str,
    *,
    deployed: bool = True,
) -> StackContext:
    cf = clients("cloudformation")
    resources = cf.describe_stack_resources(StackName=name)["StackResources"] if deployed else []
    pages = cf.get_paginator("list_exports").paginate()
    exports = {e["Name"]: e["Value"] for page in pages for e in page["Exports"] if e.get("Value")}
    account = clients("sts").get_caller_identity()["Account"]
    return StackContext(
        parameters={
            **parameters,
            "AWS::StackName": name,
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        },
        physical_ids={
            r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources if r.get("LogicalResourceId")
        },
        exports=exports,
        get_att=_get_att(clients),
        resource_types={k: v["Type"] for k, v in template["Resources"].items()},
    )


def ensure_user(cognito: Any, pool_id: str, user: DevUser) -> None:
    access = [{"Name": "custom:write", "Value": user.write}, {"Name": "custom:read", "Value": user.read}]
    try:
        cognito.admin_get_user(UserPoolId=pool_id, Username=user.email)
        cognito.admin_update_user_attributes(UserPoolId=pool_id, Username=user.email, UserAttributes=access)
    except cognito.exceptions.UserNotFoundException:
        identity = [{"Name": "email", "Value": user.email}, {"Name": "email_verified", "Value": "true"}]
        cognito.admin_create_user(
            UserPoolId=pool_id,
            Username=user.email,
            UserAttributes=identity + access,
            MessageAction="SUPPRESS",
        )
    cognito.admin_set_user_password(
        UserPoolId=pool_id, Username=user.email, Password=user.password, Permanent=True
    )


def provision(
    settings: GatewaySettings | None = None, *, dev_users: bool = True, max_receive_count: int = 10
) -> ProvisionResult:
    settings = settings or GatewaySettings()
    region = settings.region
    # One client per service for the whole run: creating a boto3 client costs tens of milliseconds.
    clients: Clients = functools.cache(
        lambda service: aws.client(service, region, read_timeout=30, max_attempts=3)
    )
    cf = clients("cloudformation")
    parameters = {
        "Prefix": settings.prefix,
        "CoreStackName": stack_name(settings.prefix, "core"),
        "MaxReceiveCount": str(max_receive_count),
    }
    deployed = []
    for short in STACKS:
        name, template = stack_name(settings.prefix, short), load_template(short)
        if emulated():
            ctx = stack_context(clients, name, template, parameters, region, deployed=False)
            check_imports(name, template, ctx)
            if offloaded := offloaded_services():
                template = deploy_offloaded(template, ctx, clients, offloaded)
        deploy_stack(cf, name, template, parameters)
        if emulated():
            fill_gaps(template, stack_context(clients, name, template, parameters, region), clients)
        deployed.append(name)
    sqs, cognito = clients("sqs"), clients("cognito-idp")
    queues = {n: str(sqs.get_queue_url(QueueName=settings.queue_name(n))["QueueUrl"]) for n in SUBSCRIPTIONS}
    topic_arn = aws.resolve_topic_arn(clients("sns"), settings.topic_name)
    pool_id = settings.user_pool_id or find_user_pool(cognito, settings.user_pool)
    client_id = settings.client_id or find_client(cognito, pool_id, settings.client_name)
    users = load_dev_users() if dev_users else []
    for user in users:
        ensure_user(cognito, pool_id, user)
    log.info("bootstrap done stacks=%s pool=%s users=%d", ",".join(deployed), pool_id, len(users))
    return ProvisionResult(topic_arn, queues, pool_id, client_id, [u.email for u in users], deployed)
