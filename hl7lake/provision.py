"""`hl7lake bootstrap`: creates (or brings up to date) every resource the services use. Idempotent."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from gateway.bootstrap import find_client, find_user_pool
from gateway.config import GatewaySettings
from hl7lake.devusers import DevUser, load_dev_users
from hub import aws
from hub.topology import SUBSCRIPTIONS, Subscription

log = logging.getLogger(__name__)

SOURCE_INDEX = "bySource"


@dataclass
class ProvisionResult:
    topic_arn: str
    queues: dict[str, str]
    user_pool_id: str
    client_id: str
    users: list[str]


def ensure_topic(sns: Any, name: str) -> str:
    return str(sns.create_topic(Name=name)["TopicArn"])


def _queue(sqs: Any, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    if attributes:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return str(url), str(arn)


def ensure_subscriber(
    sns: Any, sqs: Any, settings: GatewaySettings, topic_arn: str, sub: Subscription, max_receive_count: int
) -> str:
    _, dlq_arn = _queue(sqs, settings.dlq_name(sub.name), {"MessageRetentionPeriod": str(14 * 24 * 3600)})
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "hub-to-queue",
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": "*",
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    url, arn = _queue(
        sqs,
        settings.queue_name(sub.name),
        {
            "VisibilityTimeout": "60",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
            ),
            "Policy": json.dumps(policy),
        },
    )
    attributes = {
        "RawMessageDelivery": "true",
        "FilterPolicyScope": "MessageAttributes",
        "FilterPolicy": json.dumps(sub.filter_policy),
    }
    existing = [
        s["SubscriptionArn"]
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
        for s in page["Subscriptions"]
        if s["Endpoint"] == arn and s["Protocol"] == "sqs"
    ]
    if existing:
        for name, value in attributes.items():
            sns.set_subscription_attributes(
                SubscriptionArn=existing[0], AttributeName=name, AttributeValue=value
            )
    else:
        sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=arn,
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )
    return url


def _create_bucket(s3: Any, name: str, region: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(**kwargs)
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )


def ensure_buckets(s3: Any, settings: GatewaySettings) -> None:
    _create_bucket(s3, settings.lake_bucket_name, settings.region)
    s3.put_bucket_versioning(Bucket=settings.lake_bucket_name, VersioningConfiguration={"Status": "Enabled"})
    _create_bucket(s3, settings.payload_bucket_name, settings.region)
    s3.put_bucket_lifecycle_configuration(
        Bucket=settings.payload_bucket_name,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire-payloads",
                    "Status": "Enabled",
                    "Filter": {"Prefix": "payloads/"},
                    "Expiration": {"Days": 14},
                }
            ]
        },
    )


def _table(ddb: Any, **spec: Any) -> None:
    try:
        ddb.create_table(BillingMode="PAY_PER_REQUEST", **spec)
    except ddb.exceptions.ResourceInUseException:
        return
    ddb.get_waiter("table_exists").wait(
        TableName=spec["TableName"], WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )


def ensure_tables(ddb: Any, settings: GatewaySettings) -> None:
    _table(
        ddb,
        TableName=settings.catalog_table_name,
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "source", "AttributeType": "S"},
            {"AttributeName": "sortKey", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": SOURCE_INDEX,
                "KeySchema": [
                    {"AttributeName": "source", "KeyType": "HASH"},
                    {"AttributeName": "sortKey", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    _table(
        ddb,
        TableName=settings.dedup_table_name,
        AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
    )
    ttl = ddb.describe_time_to_live(TableName=settings.dedup_table_name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        ddb.update_time_to_live(
            TableName=settings.dedup_table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"},
        )


def ensure_identity(cognito: Any, settings: GatewaySettings) -> tuple[str, str]:
    try:
        pool_id = settings.user_pool_id or find_user_pool(cognito, settings.user_pool)
    except LookupError:
        pool_id = cognito.create_user_pool(
            PoolName=settings.user_pool,
            UsernameAttributes=["email"],
            AutoVerifiedAttributes=["email"],
            Policies={
                "PasswordPolicy": {
                    "MinimumLength": 12,
                    "RequireUppercase": True,
                    "RequireLowercase": True,
                    "RequireNumbers": True,
                    "RequireSymbols": True,
                }
            },
            Schema=[
                {"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True},
                {"Name": "write", "AttributeDataType": "String", "Mutable": True},
                {"Name": "read", "AttributeDataType": "String", "Mutable": True},
            ],
        )["UserPool"]["Id"]
    try:
        client_id = settings.client_id or find_client(cognito, pool_id, settings.client_name)
    except LookupError:
        client_id = cognito.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName=settings.client_name,
            GenerateSecret=False,
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            ReadAttributes=["email", "custom:write", "custom:read"],
            WriteAttributes=["email"],
        )["UserPoolClient"]["ClientId"]
    return str(pool_id), str(client_id)


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
    settings: GatewaySettings | None = None, *, dev_users: bool = True, max_receive_count: int = 5
) -> ProvisionResult:
    settings = settings or GatewaySettings()
    region = settings.region
    sns, sqs = aws.client("sns", region), aws.client("sqs", region)
    s3, ddb, cognito = (
        aws.client("s3", region),
        aws.client("dynamodb", region),
        aws.client("cognito-idp", region),
    )
    topic_arn = ensure_topic(sns, settings.topic_name)
    queues = {
        name: ensure_subscriber(sns, sqs, settings, topic_arn, sub, max_receive_count)
        for name, sub in SUBSCRIPTIONS.items()
    }
    ensure_buckets(s3, settings)
    ensure_tables(ddb, settings)
    pool_id, client_id = ensure_identity(cognito, settings)
    users = load_dev_users() if dev_users else []
    for user in users:
        ensure_user(cognito, pool_id, user)
    log.info(
        "bootstrap done topic=%s queues=%s pool=%s users=%d", topic_arn, ",".join(queues), pool_id, len(users)
    )
    return ProvisionResult(topic_arn, queues, pool_id, client_id, [u.email for u in users])
