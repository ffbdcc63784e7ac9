"""Liveness, readiness (the emulator / AWS answers, the hub keeps up) and Prometheus metrics."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.deps import Services
from gateway.services import GatewayServices, ReadinessCheck

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _outcome(check: ReadinessCheck) -> str:
    try:
        check()
    except Exception as exc:
        return f"failing: {exc.__class__.__name__}"
    return "ok"


def run_checks(services: GatewayServices) -> dict[str, str]:
    """Every check at once, each bounded: a hanging dependency is reported, it does not hang /readyz."""
    timeout = services.settings.readiness_timeout_seconds
    pool = ThreadPoolExecutor(max_workers=max(1, len(services.readiness)), thread_name_prefix="readyz")
    try:
        futures = {name: pool.submit(_outcome, check) for name, check in services.readiness.items()}
        wait(futures.values(), timeout=timeout)
        checks = {
            name: future.result() if future.done() else f"failing: no answer within {timeout:g}s"
            for name, future in futures.items()
        }
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return checks


@router.get("/readyz", summary="Every dependency answers and the hub keeps up (within ~2 s)")
async def readyz(services: Services) -> JSONResponse:
    checks = await run_in_threadpool(run_checks, services)
    body: dict[str, Any] = {"checks": checks}
    if services.backlog is not None:
        backlog = services.backlog.current()
        checks["backlog"] = f"behind: {', '.join(backlog.behind)}" if backlog.behind else "ok"
        body["backlog"] = backlog.to_dict()
    ready = all(v == "ok" for v in checks.values())
    body["status"] = "ready" if ready else "not ready"
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
