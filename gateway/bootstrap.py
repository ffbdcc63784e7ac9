"""Wiring for the front door: real adapters from settings, resolved once at start-up."""

from __future__ import annotations

import logging
from typing import Any

import uvicorn
from fastapi import FastAPI
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from gateway.app import create_app
from gateway.auth import Jwks, TokenVerifier, cognito_user_attributes
from gateway.backlog import BacklogMonitor, sqs_depth_reader
from gateway.completions import DeferredCompletions
from gateway.config import GatewaySettings
from gateway.dedup import DynamoDedupStore
from gateway.ingest import IngestService
from gateway.lake_reader import DynamoLakeReader
from gateway.queue_metrics import register_queue_metrics
from gateway.services import GatewayServices
from gateway.ui.wiring import build_ui
from hub import aws, telemetry
from hub.cognito import cognito_endpoint, find_client, find_user_pool
from hub.group_commit import GroupCommitPublisher
from hub.payloads import S3PayloadStore
from hub.publisher import SnsPublisher
from hub.topology import SUBSCRIPTIONS

log = logging.getLogger(__name__)


def oidc_urls(settings: GatewaySettings, pool_id: str) -> tuple[str, str]:
    issuer = settings.oidc_issuer or f"https://cognito-idp.{settings.region}.amazonaws.com/{pool_id}"
    if settings.jwks_url:
        return issuer, settings.jwks_url
    endpoint = cognito_endpoint()
    base = f"{endpoint.rstrip('/')}/{pool_id}" if endpoint else issuer
    return issuer, f"{base}/.well-known/jwks.json"


def build_ingest(
    settings: GatewaySettings,
    *,
    sns: Any = None,
    s3: Any = None,
    ddb: Any = None,
    topic_arn: str | None = None,
    sqs: Any = None,
    backlog_limit: int | None = None,
    door: str = "http",
) -> IngestService:
    """The ingest path (dedup store + hub publisher) every front door shares: HTTP, MLLP and the batch
    splitter. ``backlog_limit``: the hub backlog it yields to (default HL7LAKE_MAX_BACKLOG)."""
    sns = aws.client("sns", settings.region) if sns is None else sns
    s3 = aws.client("s3", settings.region) if s3 is None else s3
    ddb = aws.client("dynamodb", settings.region) if ddb is None else ddb
    topic_arn = topic_arn or settings.topic_arn or aws.resolve_topic_arn(sns, settings.topic_name)
    publisher = GroupCommitPublisher(
        SnsPublisher(
            sns, topic_arn, S3PayloadStore(s3, settings.payload_bucket_name), settings.max_inline_bytes
        )
    )
    dedup = DeferredCompletions(
        DynamoDedupStore(
            ddb, settings.dedup_table_name, settings.dedup_ttl_seconds, settings.in_progress_seconds
        ),
        linger_seconds=settings.dedup_complete_linger_seconds,
    )
    backlog = None
    if settings.max_backlog > 0:
        sqs = aws.client("sqs", settings.region) if sqs is None else sqs
        backlog = BacklogMonitor(
            sqs_depth_reader(sqs, subscriber_queue_urls(sqs, settings)),
            settings.max_backlog if backlog_limit is None else backlog_limit,
            refresh_seconds=settings.backlog_refresh_seconds,
        )
    return IngestService(
        dedup,
        publisher,
        backlog=backlog,
        sync_batch_limit=settings.sync_batch_limit,
        max_messages=settings.max_messages_per_request,
        door=door,
    )


def subscriber_queue_urls(sqs: Any, settings: GatewaySettings) -> dict[str, str]:
    return {
        name: str(sqs.get_queue_url(QueueName=settings.queue_name(name))["QueueUrl"])
        for name in SUBSCRIPTIONS
    }


@retry(
    retry=retry_if_exception_type((LookupError, OSError)),
    stop=stop_after_delay(30),
    wait=wait_fixed(1),
    reraise=True,
)
def build_services(settings: GatewaySettings) -> GatewayServices:
    sns = aws.client("sns", settings.region)
    s3 = aws.client("s3", settings.region)
    ddb = aws.client("dynamodb", settings.region)
    cognito = aws.client("cognito-idp", settings.region)
    topic_arn = settings.topic_arn or aws.resolve_topic_arn(sns, settings.topic_name)
    pool_id = settings.user_pool_id or find_user_pool(cognito, settings.user_pool)
    client_id = settings.client_id or find_client(cognito, pool_id, settings.client_name)
    issuer, jwks_url = oidc_urls(settings, pool_id)
    ingest = build_ingest(settings, sns=sns, s3=s3, ddb=ddb, topic_arn=topic_arn)
    jwks = Jwks(jwks_url)
    return GatewayServices(
        settings=settings,
        verifier=TokenVerifier(
            jwks, issuer, client_id, cognito_user_attributes(cognito), leeway=settings.clock_skew_seconds
        ),
        ingest=ingest,
        reader=DynamoLakeReader(ddb, s3, settings.catalog_table_name),
        readiness={
            "hub": lambda: sns.get_topic_attributes(TopicArn=topic_arn),
            "dedup": lambda: ddb.describe_table(TableName=settings.dedup_table_name),
            "catalog": lambda: ddb.describe_table(TableName=settings.catalog_table_name),
            "lake": lambda: s3.head_bucket(Bucket=settings.lake_bucket_name),
            "identity": lambda: cognito.describe_user_pool(UserPoolId=pool_id),
        },
        backlog=ingest.backlog,
        ui=build_ui(settings, cognito, client_id),
    )


def build_app(settings: GatewaySettings | None = None) -> FastAPI:
    return create_app(build_services(settings or GatewaySettings()))


def run(settings: GatewaySettings | None = None) -> None:
    telemetry.configure_tracing("gateway")
    settings = settings or GatewaySettings()
    app = build_app(settings)
    register_queue_metrics(settings)
    log.info("gateway listening host=%s port=%d", settings.host, settings.port)
    # log_config=None: uvicorn's own lines go through our logging setup (escaping, JSON format).
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_level="warning", access_log=False, log_config=None
    )
