"""The FastAPI application (routes and error handling); built around a GatewayServices."""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.problems import Problem
from gateway.routers import health, messages
from gateway.services import GatewayServices

log = logging.getLogger(__name__)

REQUESTS = Counter("hl7lake_http_requests_total", "HTTP requests", ["route", "status"])
LATENCY = Histogram("hl7lake_http_request_seconds", "HTTP request latency", ["route"])


def create_app(services: GatewayServices) -> FastAPI:
    app = FastAPI(
        title="hl7lake front door",
        version="0.1.0",
        description="Send HL7 v2 (ER7) messages to the lake and read them back parsed.",
    )
    app.state.services = services
    app.include_router(messages.router)
    app.include_router(health.router)

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
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error path=%s", request.url.path)
        return JSONResponse(
            {"error": "internal", "message": "unexpected error; nothing was acknowledged, retry later"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.middleware("http")
    async def observe(request: Request, call_next: object) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)  # type: ignore[operator]
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        LATENCY.labels(path).observe(time.perf_counter() - started)
        REQUESTS.labels(path, str(response.status_code)).inc()
        return response

    return app
