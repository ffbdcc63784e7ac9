"""The dashboard's real adapters: Cognito password login and the subscription queues' depths."""

from __future__ import annotations

from typing import Any

from gateway.config import GatewaySettings
from gateway.ui.login import CognitoPasswordLogin
from gateway.ui.queues import QueueDepth, SqsQueueDepths
from gateway.ui.services import UiServices
from hub import aws
from hub.topology import SUBSCRIPTIONS


class LazySqsQueueDepths:
    """Resolves the queue URLs on first use: the dashboard must not hold up the gateway's start."""

    def __init__(self, sqs: Any, settings: GatewaySettings) -> None:
        self._sqs = sqs
        self._settings = settings
        self._reader: SqsQueueDepths | None = None

    def _url(self, name: str) -> str:
        return str(self._sqs.get_queue_url(QueueName=name)["QueueUrl"])

    def depths(self) -> list[QueueDepth]:
        if self._reader is None:
            url = self._url
            self._reader = SqsQueueDepths(
                self._sqs,
                {
                    name: (url(self._settings.queue_name(name)), url(self._settings.dlq_name(name)))
                    for name in SUBSCRIPTIONS
                },
            )
        return self._reader.depths()


def build_ui(settings: GatewaySettings, cognito: Any, client_id: str) -> UiServices:
    return UiServices(
        login=CognitoPasswordLogin(cognito, client_id),
        queues=LazySqsQueueDepths(aws.client("sqs", settings.region), settings),
    )
