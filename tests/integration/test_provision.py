"""`hl7lake bootstrap` creates what the services expect, and running it twice changes nothing."""

from __future__ import annotations

import json

from hl7lake.provision import provision
from hub import aws
from hub.topology import SUBSCRIPTIONS


def test_bootstrap_is_idempotent_and_complete(stack) -> None:
    settings, first = stack
    second = provision(settings, max_receive_count=2)
    assert (second.topic_arn, second.queues, second.user_pool_id, second.client_id) == (
        first.topic_arn,
        first.queues,
        first.user_pool_id,
        first.client_id,
    )

    sns, sqs = aws.client("sns", settings.region), aws.client("sqs", settings.region)
    subs = sns.list_subscriptions_by_topic(TopicArn=first.topic_arn)["Subscriptions"]
    assert len(subs) == len(SUBSCRIPTIONS)  # no duplicate subscriptions after a re-run
    for sub in subs:
        attrs = sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])["Attributes"]
        name = sub["Endpoint"].rsplit(":", 1)[-1].removeprefix(f"{settings.prefix}-")
        assert attrs["RawMessageDelivery"] == "true"
        assert json.loads(attrs["FilterPolicy"]) == SUBSCRIPTIONS[name].filter_policy
    for name, url in first.queues.items():
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attrs["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"].endswith(f"{settings.prefix}-{name}-dlq")
        assert int(redrive["maxReceiveCount"]) == 2

    s3 = aws.client("s3", settings.region)
    assert s3.get_bucket_versioning(Bucket=settings.lake_bucket_name)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=settings.lake_bucket_name)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    rules = s3.get_bucket_encryption(Bucket=settings.lake_bucket_name)["ServerSideEncryptionConfiguration"][
        "Rules"
    ]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    ddb = aws.client("dynamodb", settings.region)
    ttl = ddb.describe_time_to_live(TableName=settings.dedup_table_name)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == "expiresAt"
    catalog = ddb.describe_table(TableName=settings.catalog_table_name)["Table"]
    assert catalog["GlobalSecondaryIndexes"][0]["IndexName"] == "bySource"

    cognito = aws.client("cognito-idp", settings.region)
    users = {
        a["Value"]
        for u in cognito.list_users(UserPoolId=first.user_pool_id)["Users"]
        for a in u["Attributes"]
        if a["Name"] == "email"
    }
    assert {"sender@hospital-a.example", "reader@hospital-a.example", "sender@hospital-b.example"} <= users
