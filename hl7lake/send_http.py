"""POST /v1/messages for `hl7lake send`: one file one body, 503 retried after its Retry-After."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from hl7lake.gateway_client import problem_text
from hl7lake.outcomes import FileOutcome, from_accepted_body, single

MAX_RETRIES = 5
MAX_WAIT = 10.0  # seconds; a larger Retry-After is cut to this


def retry_after(response: httpx.Response) -> float:
    value = response.headers.get("Retry-After", "")
    return min(float(value), MAX_WAIT) if value.isdigit() else 1.0


class HttpSender:
    def __init__(
        self,
        client: httpx.Client,
        *,
        retries: int = MAX_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._retries = retries
        self._sleep = sleep

    def send(self, path: Path) -> FileOutcome:
        body = path.read_bytes()
        for attempt in range(self._retries + 1):
            try:
                response = self._client.post(
                    "/v1/messages", content=body, headers={"Content-Type": "application/hl7-v2"}
                )
            except httpx.HTTPError as exc:
                return single(str(path), "rejected", f"no answer: {exc.__class__.__name__}")
            if response.status_code == 503 and attempt < self._retries:
                self._sleep(retry_after(response))
                continue
            return outcome_of(str(path), response)
        raise AssertionError("unreachable")  # the last attempt always returns


def outcome_of(path: str, response: httpx.Response) -> FileOutcome:
    if response.status_code == 202:
        return from_accepted_body(path, response.json())
    if response.status_code == 409:
        return single(path, "duplicate")
    return single(path, "rejected", problem_text(response))
