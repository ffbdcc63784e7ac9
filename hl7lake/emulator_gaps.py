"""The one place that makes up for what an emulator's CloudFormation silently skips.

moto 5 creates the stacks but skips `AWS::SNS::Subscription`, `AWS::SQS::QueuePolicy`,
`AWS::S3::BucketPolicy`, `AWS::Cognito::UserPool(Client)`,, ignores a table's
`TimeToLiveSpecification` and a bucket's versioning, public access block and lifecycle rules.
After each stack is created, this module applies exactly those properties, read from the same
template, through the service APIs. Detect, don't assume: each setting is read back first and
only what is missing or different is applied (LocalStack's CloudFormation creates subscriptions and
queue policies itself; docs/decisions/0011). It never runs against real AWS, where CloudFormation
does all of it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

from hl7lake.intrinsics import StackContext, resolve
from hub.cognito import find_client, find_user_pool

log = logging.getLogger(__name__)

Clients = Callable[[str], Any]


def _bool(value: Any) -> bool:
    return str(value).lower() == "true"


def _missing(clients: Clients, service: str, call: str, **kwargs: Any) -> Any:
    """What `call` reports, or None where the setting is absent (each service says so its own way)."""
    client = clients(service)
    try:
        return getattr(client, call)(**kwargs)
    except client.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code.startswith("NoSuch") or code.endswith(("NotFound", "NotFoundError")):
            return None
        raise


def _bucket(clients: Clients, props: dict[str, Any], apply: bool) -> list[str]:
    s3 = clients("s3")
    name = str(props["BucketName"])
    missing = []
    if "VersioningConfiguration" in props:
        wanted = props["VersioningConfiguration"]["Status"]
        if s3.get_bucket_versioning(Bucket=name).get("Status") != wanted:
            missing.append(f"versioning of {name}")
            if apply:
                s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": wanted})
    if "PublicAccessBlockConfiguration" in props:
        block = {k: _bool(v) for k, v in props["PublicAccessBlockConfiguration"].items()}
        found = _missing(clients, "s3", "get_public_access_block", Bucket=name)
        if found is None or found["PublicAccessBlockConfiguration"] != block:
            missing.append(f"public access block of {name}")
            if apply:
                s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)
    if "BucketEncryption" in props:
        rules = [
            {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
            for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        ]
        found = _missing(clients, "s3", "get_bucket_encryption", Bucket=name)
        defaults = [
            r.get("ApplyServerSideEncryptionByDefault")
            for r in (found or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
        ]
        if defaults != [r["ApplyServerSideEncryptionByDefault"] for r in rules]:
            missing.append(f"encryption of {name}")
            if apply:
                s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "LifecycleConfiguration" in props:
        rules = [
            {
                "ID": r["Id"],
                "Status": r["Status"],
                "Filter": {"Prefix": r.get("Prefix", "")},
                "Expiration": {"Days": int(r["ExpirationInDays"])},
            }
            for r in props["LifecycleConfiguration"]["Rules"]
        ]
        found = _missing(clients, "s3", "get_bucket_lifecycle_configuration", Bucket=name)
        have = {(r.get("ID"), r.get("Expiration", {}).get("Days")) for r in (found or {}).get("Rules", [])}
        if have != {(r["ID"], r["Expiration"]["Days"]) for r in rules}:
            missing.append(f"lifecycle rules of {name}")
            if apply:
                s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
    return missing


def denies_plain_http(policy: dict[str, Any]) -> bool:
    return any(
        st.get("Effect") == "Deny" and "aws:SecureTransport" in json.dumps(st.get("Condition", {}))
        for st in policy.get("Statement", [])
    )


def _bucket_policy(clients: Clients, props: dict[str, Any], apply: bool) -> list[str]:
    # boto3's own endpoint variables, read as boto3 reads them (not settings of ours)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    if endpoint.startswith("http://") and denies_plain_http(props["PolicyDocument"]):
        # moto enforces bucket policies: a TLS-only policy would refuse every call to a plain-HTTP
        # emulator. It is deployed as written on AWS; here it is validated (cfn-lint) but not applied.
        # (LocalStack does not enforce bucket policies: what its CloudFormation applied stays.)
        log.info(
            "bucket policy of %s not applied (TLS-only, emulator endpoint is plain HTTP)", props["Bucket"]
        )
        return []
    found = _missing(clients, "s3", "get_bucket_policy", Bucket=props["Bucket"])
    if found is not None and json.loads(found["Policy"]) == props["PolicyDocument"]:
        return []
    if apply:
        clients("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(props["PolicyDocument"]))
    return [f"bucket policy of {props['Bucket']}"]


def _queue_policy(clients: Clients, props: dict[str, Any], apply: bool) -> list[str]:
    sqs = clients("sqs")
    missing = []
    for url in props["Queues"]:
        found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {})
        if "Policy" in found and json.loads(found["Policy"]) == props["PolicyDocument"]:
            continue
        missing.append(f"queue policy of {url.rsplit('/', 1)[-1]}")
        if apply:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
    return missing


def _subscription_attributes(props: dict[str, Any]) -> dict[str, str]:
    attributes = {}
    if "RawMessageDelivery" in props:
        attributes["RawMessageDelivery"] = str(_bool(props["RawMessageDelivery"])).lower()
    if "FilterPolicyScope" in props:
        attributes["FilterPolicyScope"] = props["FilterPolicyScope"]
    if "FilterPolicy" in props:
        attributes["FilterPolicy"] = json.dumps(props["FilterPolicy"])
    return attributes


def _same_attribute(name: str, found: str | None, wanted: str) -> bool:
    if found is None:
        return False
    if name == "FilterPolicy":
        return bool(json.loads(found) == json.loads(wanted))
    return found.lower() == wanted.lower()


def _subscription(clients: Clients, props: dict[str, Any], apply: bool) -> list[str]:
    sns = clients("sns")
    topic, endpoint, protocol = props["TopicArn"], props["Endpoint"], props["Protocol"]
    attributes = _subscription_attributes(props)
    label = f"subscription {endpoint.rsplit(':', 1)[-1]}"
    existing = [
        s["SubscriptionArn"]
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
        for s in page["Subscriptions"]
        if s["Endpoint"] == endpoint and s["Protocol"] == protocol
    ]
    if not existing:
        if apply:
            sns.subscribe(TopicArn=topic, Protocol=protocol, Endpoint=endpoint, Attributes=attributes)
        return [label]
    found = sns.get_subscription_attributes(SubscriptionArn=existing[0])["Attributes"]
    differing = {k: v for k, v in attributes.items() if not _same_attribute(k, found.get(k), v)}
    if apply:
        for name, value in differing.items():
            sns.set_subscription_attributes(
                SubscriptionArn=existing[0], AttributeName=name, AttributeValue=value
            )
    return [f"{label} {name}" for name in differing]


def _table_ttl(clients: Clients, props: dict[str, Any], apply: bool = True) -> list[str]:
    spec = props.get("TimeToLiveSpecification")
    if not spec:
        return []
    ddb = clients("dynamodb")
    status = ddb.describe_time_to_live(TableName=props["TableName"])["TimeToLiveDescription"]
    if status.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        return []
    if apply:
        ddb.update_time_to_live(
            TableName=props["TableName"],
            TimeToLiveSpecification={
                "Enabled": _bool(spec["Enabled"]),
                "AttributeName": spec["AttributeName"],
            },
        )
    return [f"TTL of {props['TableName']}"]


def _user_pool(clients: Clients, props: dict[str, Any]) -> str:
    cognito = clients("cognito-idp")
    try:
        return find_user_pool(cognito, props["UserPoolName"])
    except LookupError:
        pass
    schema = [
        {k: (_bool(v) if k in ("Required", "Mutable") else v) for k, v in attr.items()}
        for attr in props["Schema"]
    ]
    policy = {
        k: (_bool(v) if k.startswith("Require") else int(v))
        for k, v in props["Policies"]["PasswordPolicy"].items()
    }
    return str(
        cognito.create_user_pool(
            PoolName=props["UserPoolName"],
            UsernameAttributes=props.get("UsernameAttributes", []),
            AutoVerifiedAttributes=props.get("AutoVerifiedAttributes", []),
            Policies={"PasswordPolicy": policy},
            Schema=schema,
        )["UserPool"]["Id"]
    )


def _user_pool_client(clients: Clients, props: dict[str, Any]) -> str:
    cognito = clients("cognito-idp")
    pool_id = props["UserPoolId"]
    try:
        return find_client(cognito, pool_id, props["ClientName"])
    except LookupError:
        pass
    return str(
        cognito.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName=props["ClientName"],
            GenerateSecret=_bool(props.get("GenerateSecret", False)),
            ExplicitAuthFlows=props.get("ExplicitAuthFlows", []),
            ReadAttributes=props.get("ReadAttributes", []),
            WriteAttributes=props.get("WriteAttributes", []),
        )["UserPoolClient"]["ClientId"]
    )


def _table(clients: Clients, props: dict[str, Any]) -> str:
    """Only for a table CloudFormation did not create (offloaded to another emulator)."""
    ddb = clients("dynamodb")
    name = str(props["TableName"])
    try:
        ddb.describe_table(TableName=name)
    except ddb.exceptions.ResourceNotFoundException:
        kwargs: dict[str, Any] = {
            "TableName": name,
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
        }
        if "GlobalSecondaryIndexes" in props:
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        ddb.create_table(**kwargs)
        ddb.get_waiter("table_exists").wait(TableName=name)
    _table_ttl(clients, props, apply=True)
    return name


# Resources whose physical id the gap-filler itself produces (later resources Ref them).
_CREATES = {"AWS::Cognito::UserPool": _user_pool, "AWS::Cognito::UserPoolClient": _user_pool_client}


def create_resource(clients: Clients, kind: str, props: dict[str, Any]) -> str:
    """Creates (or finds) a resource through its service's API; returns its physical id."""
    creators = {**_CREATES, "AWS::DynamoDB::Table": _table}
    if kind not in creators:
        raise LookupError(f"cannot create {kind} outside CloudFormation")
    return creators[kind](clients, props)


# Each detects what the emulator left out and, with apply=True, adds it; returns what was missing.
_APPLIES: dict[str, Callable[[Clients, dict[str, Any], bool], list[str]]] = {
    "AWS::S3::Bucket": _bucket,
    "AWS::S3::BucketPolicy": _bucket_policy,
    "AWS::SQS::QueuePolicy": _queue_policy,
    "AWS::SNS::Subscription": _subscription,
    "AWS::DynamoDB::Table": _table_ttl,
}


def missing_settings(
    template: dict[str, Any], ctx: StackContext, clients: Clients, *, apply: bool = False
) -> list[str]:
    """What the template sets that the deployed resources lack (applied too, with apply=True)."""
    missing = []
    for logical, resource in template["Resources"].items():
        kind = resource["Type"]
        if kind in _CREATES:
            props = resolve(resource.get("Properties", {}), ctx)
            ctx.physical_ids[logical] = _CREATES[kind](clients, props)
        elif kind in _APPLIES:
            missing += _APPLIES[kind](clients, resolve(resource.get("Properties", {}), ctx), apply)
    return missing


def fill_gaps(template: dict[str, Any], ctx: StackContext, clients: Clients) -> list[str]:
    """Detects, in template order, what the emulator skipped and applies only that; returns it."""
    applied = missing_settings(template, ctx, clients, apply=True)
    log.info("emulator gaps filled: %s", "; ".join(applied) or "none (the emulator created everything)")
    return applied
