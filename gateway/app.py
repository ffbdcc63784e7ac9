"""The FastAPI application (routes and error handling); built around a GatewayServices."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.ingest import unexpected
from gateway.problems import Problem
from gateway.routers import batches, health, messages
from gateway.services import GatewayServices
from gateway.ui.mount import mount_ui

log = logging.getLogger(__name__)

REQUESTS = Counter("hl7lake_http_requests_total", "HTTP requests", ["route", "status"])
LATENCY = Histogram("hl7lake_http_request_seconds", "HTTP request latency", ["route"])


class ObserveRequests:
    """Counts requests and times them by route template.

    Plain ASGI middleware: `@app.middleware("http")` (BaseHTTPMiddleware) adds a task and a body stream
    to every request, a large share of the cost of a small POST.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_noting_status)
        path = getattr(scope.get("route"), "path", "unmatched")  # the router sets it on this scope
        LATENCY.labels(path).observe(time.perf_counter() - started)
        REQUESTS.labels(path, str(status)).inc()


def create_app(services: GatewayServices) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        services.ingest.close()

    app = FastAPI(
        lifespan=lifespan,
        title="hl7lake front door",
        version="0.1.0",
        description="Send HL7 v2 (ER7) messages to the lake and read them back parsed.",
    )
    app.state.services = services
    app.include_router(messages.router)
    app.include_router(batches.router)
    app.include_router(health.router)
    if services.ui is not None:
        mount_ui(app)

    @app.exception_handler(Problem)
    async def on_problem(_: Request, problem: Problem) -> JSONResponse:
        return messages.problem_response(problem)

    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"where": ".".join(map(str, e["loc"])), "reason": e["msg"]} for e in exc.errors()]
        return JSONResponse({"error": "bad_request", "message": "invalid request", "errors": errors}, 400)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": "http_error", "message": str(exc.detail)}, exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        # a defect, not an outage: 500 without Retry-After (dependency failures arrive as Problem(503))
        return messages.problem_response(unexpected(exc))

    app.add_middleware(ObserveRequests)

    return app
