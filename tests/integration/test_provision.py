"""`hl7lake bootstrap` deploys the stacks; resources match the templates; a re-run changes nothing."""

from __future__ import annotations

import json

from hl7lake.provision import provision, stack_name
from hl7lake.templates import STACKS, load_template
from hub import aws
from hub.topology import SUBSCRIPTIONS


def _subscriptions_in_templates() -> dict[str, dict]:
    """Queue logical name → the template's subscription properties, for every stack."""
    found = {}
    for name in STACKS:
        for resource in load_template(name)["Resources"].values():
            if resource["Type"] == "AWS::SNS::Subscription":
                queue = resource["Properties"]["Endpoint"]["Fn::GetAtt"][0]
                queue_name = load_template(name)["Resources"][queue]["Properties"]["QueueName"]["Fn::Sub"]
                found[queue_name.replace("${Prefix}-", "")] = resource["Properties"]
    return found


def test_subscriptions_in_templates_match_the_hub_topology() -> None:
    in_templates = _subscriptions_in_templates()
    assert in_templates and set(in_templates) == set(SUBSCRIPTIONS)  # never a vacuous loop
    for name, props in in_templates.items():
        assert props["FilterPolicy"] == SUBSCRIPTIONS[name].filter_policy
        assert props["RawMessageDelivery"] is True


def test_bootstrap_matches_templates_and_is_idempotent(stack) -> None:
    settings, first = stack
    second = provision(settings, max_receive_count=4)
    assert (second.topic_arn, second.queues, second.user_pool_id, second.client_id) == (
        first.topic_arn,
        first.queues,
        first.user_pool_id,
        first.client_id,
    )
    cf = aws.client("cloudformation", settings.region)
    pages = cf.get_paginator("list_exports").paginate()
    exports = {e["Name"] for page in pages for e in page["Exports"]}
    core = stack_name(settings.prefix, "core")
    assert {f"{core}-{k}" for k in ("Bucket", "ArtifactBucket", "Topic", "Catalog", "CatalogArn")} <= exports

    sns, sqs = aws.client("sns", settings.region), aws.client("sqs", settings.region)
    subs = sns.list_subscriptions_by_topic(TopicArn=first.topic_arn)["Subscriptions"]
    assert subs and len(subs) == len(SUBSCRIPTIONS)  # no duplicate subscriptions after a re-run
    templates = _subscriptions_in_templates()
    for sub in subs:
        attrs = sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])["Attributes"]
        name = sub["Endpoint"].rsplit(":", 1)[-1].removeprefix(f"{settings.prefix}-")
        assert attrs["RawMessageDelivery"] == "true"
        assert attrs["FilterPolicyScope"] == templates[name]["FilterPolicyScope"]
        assert json.loads(attrs["FilterPolicy"]) == templates[name]["FilterPolicy"]
    assert first.queues  # the loop below must check something
    for name, url in first.queues.items():
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attrs["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"].endswith(f"{settings.prefix}-{name}-dlq")
        assert int(redrive["maxReceiveCount"]) == 4
        policy = json.loads(attrs["Policy"])
        assert policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"] == first.topic_arn

    s3 = aws.client("s3", settings.region)
    assert s3.get_bucket_versioning(Bucket=settings.lake_bucket_name)["Status"] == "Enabled"
    for bucket in (settings.lake_bucket_name, settings.payload_bucket_name):
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values())
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=settings.payload_bucket_name)["Rules"]
    assert lifecycle[0]["Expiration"]["Days"] == 14

    ddb = aws.client("dynamodb", settings.region)
    ttl_spec = load_template("front-door")["Resources"]["DedupTable"]["Properties"]["TimeToLiveSpecification"]
    ttl = ddb.describe_time_to_live(TableName=settings.dedup_table_name)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == ttl_spec["AttributeName"]
    catalog = ddb.describe_table(TableName=settings.catalog_table_name)["Table"]
    assert catalog["GlobalSecondaryIndexes"][0]["IndexName"] == "bySource"

    cognito = aws.client("cognito-idp", settings.region)
    pool = cognito.describe_user_pool(UserPoolId=first.user_pool_id)["UserPool"]
    assert {"custom:write", "custom:read"} <= {a["Name"] for a in pool["SchemaAttributes"]}
    users = {
        a["Value"]
        for u in cognito.list_users(UserPoolId=first.user_pool_id)["Users"]
        for a in u["Attributes"]
        if a["Name"] == "email"
    }
    assert {"sender@hospital-a.example", "reader@hospital-a.example", "sender@hospital-b.example"} <= users
