"""The one place that makes up for what an emulator's CloudFormation silently skips.

moto 5 creates the stacks but skips `AWS::SNS::Subscription`, `AWS::SQS::QueuePolicy`,
`AWS::S3::BucketPolicy`, `AWS::Cognito::UserPool(Client)`,, ignores a table's
`TimeToLiveSpecification` and a bucket's versioning, public access block and lifecycle rules.
After each stack is created, this module applies exactly those properties, read from the same
template, through the service APIs. Every step is idempotent (safe on LocalStack, which does
most of it itself). It never runs against real AWS, where CloudFormation does all of it.
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


def _bucket(clients: Clients, props: dict[str, Any]) -> str:
    s3 = clients("s3")
    name = str(props["BucketName"])
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]}
        )
    if "PublicAccessBlockConfiguration" in props:
        block = {k: _bool(v) for k, v in props["PublicAccessBlockConfiguration"].items()}
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)
    if "BucketEncryption" in props:
        rules = [
            {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
            for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        ]
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
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
    return f"bucket settings of {name}"


def denies_plain_http(policy: dict[str, Any]) -> bool:
    return any(
        st.get("Effect") == "Deny" and "aws:SecureTransport" in json.dumps(st.get("Condition", {}))
        for st in policy.get("Statement", [])
    )


def _bucket_policy(clients: Clients, props: dict[str, Any]) -> str:
    # boto3's own endpoint variables, read as boto3 reads them (not settings of ours)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    if endpoint.startswith("http://") and denies_plain_http(props["PolicyDocument"]):
        # moto enforces bucket policies: a TLS-only policy would refuse every call to a plain-HTTP
        # emulator. It is deployed as written on AWS; here it is validated (cfn-lint) but not applied.
        return f"bucket policy of {props['Bucket']} skipped (TLS-only, emulator endpoint is plain HTTP)"
    clients("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(props["PolicyDocument"]))
    return f"bucket policy of {props['Bucket']}"


def _queue_policy(clients: Clients, props: dict[str, Any]) -> str:
    for url in props["Queues"]:
        clients("sqs").set_queue_attributes(
            QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
        )
    return f"queue policy of {', '.join(props['Queues'])}"


def _subscription(clients: Clients, props: dict[str, Any]) -> str:
    sns = clients("sns")
    topic, endpoint, protocol = props["TopicArn"], props["Endpoint"], props["Protocol"]
    attributes = {}
    if "RawMessageDelivery" in props:
        attributes["RawMessageDelivery"] = str(_bool(props["RawMessageDelivery"])).lower()
    if "FilterPolicyScope" in props:
        attributes["FilterPolicyScope"] = props["FilterPolicyScope"]
    if "FilterPolicy" in props:
        attributes["FilterPolicy"] = json.dumps(props["FilterPolicy"])
    existing = [
        s["SubscriptionArn"]
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
        for s in page["Subscriptions"]
        if s["Endpoint"] == endpoint and s["Protocol"] == protocol
    ]
    if existing:
        for name, value in attributes.items():
            sns.set_subscription_attributes(
                SubscriptionArn=existing[0], AttributeName=name, AttributeValue=value
            )
    else:
        sns.subscribe(TopicArn=topic, Protocol=protocol, Endpoint=endpoint, Attributes=attributes)
    return f"subscription {endpoint.rsplit(':', 1)[-1]}"


def _table_ttl(clients: Clients, props: dict[str, Any]) -> str | None:
    spec = props.get("TimeToLiveSpecification")
    if not spec:
        return None
    ddb = clients("dynamodb")
    status = ddb.describe_time_to_live(TableName=props["TableName"])["TimeToLiveDescription"]
    if status.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        ddb.update_time_to_live(
            TableName=props["TableName"],
            TimeToLiveSpecification={
                "Enabled": _bool(spec["Enabled"]),
                "AttributeName": spec["AttributeName"],
            },
        )
    return f"TTL of {props['TableName']}"


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


# Resources whose physical id the gap-filler itself produces (later resources Ref them).
_CREATES = {"AWS::Cognito::UserPool": _user_pool, "AWS::Cognito::UserPoolClient": _user_pool_client}
_APPLIES: dict[str, Callable[[Clients, dict[str, Any]], str | None]] = {
    "AWS::S3::Bucket": _bucket,
    "AWS::S3::BucketPolicy": _bucket_policy,
    "AWS::SQS::QueuePolicy": _queue_policy,
    "AWS::SNS::Subscription": _subscription,
    "AWS::DynamoDB::Table": _table_ttl,
}


def fill_gaps(template: dict[str, Any], ctx: StackContext, clients: Clients) -> list[str]:
    """Applies what the emulator skipped, in template order; returns what it applied."""
    applied = []
    for logical, resource in template["Resources"].items():
        kind = resource["Type"]
        if kind in _CREATES:
            props = resolve(resource.get("Properties", {}), ctx)
            ctx.physical_ids[logical] = _CREATES[kind](clients, props)
            applied.append(f"{kind} {logical}")
        elif kind in _APPLIES:
            done = _APPLIES[kind](clients, resolve(resource.get("Properties", {}), ctx))
            if done:
                applied.append(done)
    log.info("emulator gaps filled: %s", "; ".join(applied))
    return applied
