"""/ui: login, overview and message pages. Every page but the login needs a session (else → /ui/login)
and shows only what the user's `read` attribute allows, as the read API does."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from gateway.auth import Principal
from gateway.deps import Services
from gateway.lake_reader import is_message
from gateway.services import GatewayServices
from gateway.ui import activity, segments
from gateway.ui.login import LoginRefused, LoginUnavailable
from gateway.ui.queues import QueueDepth
from gateway.ui.services import UiServices
from gateway.ui.session import ID_TOKEN, end_session, keep_session, session_principal, verified_principal

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/ui", include_in_schema=False)

MAX_FORM_BYTES = 4096
RECENT = 50
STATUSES = ("received", "parsed", "failed")


def utc_now() -> datetime:
    return datetime.now(UTC)


clock: Callable[[], datetime] = utc_now


def _ui(services: GatewayServices) -> UiServices:
    ui = services.ui
    assert ui is not None, "the /ui router is only included when services.ui is set"
    return ui


def _page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    response = templates.TemplateResponse(request, name, {**context, "nonce": nonce}, status_code=status)
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'self'; img-src 'self'; script-src 'nonce-{nonce}';"
        " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _to_login(request: Request) -> RedirectResponse:
    response = RedirectResponse("/ui/login", status_code=303)
    if request.cookies:
        end_session(request, response)
    return response


@router.get("/login")
async def login_form(request: Request, services: Services) -> Response:
    if await session_principal(request, services.verifier) is not None:
        return RedirectResponse("/ui", status_code=303)
    return _page(request, "login.html", {"error": None, "username": ""})


@router.post("/login")
async def login(request: Request, services: Services) -> Response:
    body = await request.body()
    form = parse_qs(body[:MAX_FORM_BYTES].decode("utf-8", "replace")) if len(body) <= MAX_FORM_BYTES else {}
    username = (form.get("username") or [""])[0].strip()
    password = (form.get("password") or [""])[0]
    if not username or not password:
        return _page(
            request, "login.html", {"error": "user name and password are required", "username": username}, 400
        )
    try:
        token = await run_in_threadpool(_ui(services).login.id_token, username, password)
    except (LoginRefused, LoginUnavailable) as exc:
        status = 401 if isinstance(exc, LoginRefused) else 503
        return _page(request, "login.html", {"error": str(exc), "username": username}, status)
    principal = await verified_principal(services.verifier, token)
    if principal is None or principal.token_use != ID_TOKEN:
        return _page(
            request,
            "login.html",
            {"error": "the identity provider's token was refused", "username": username},
            401,
        )
    response = RedirectResponse("/ui", status_code=303)
    keep_session(request, response, token)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    end_session(request, response)
    return response


def _queue_depths(ui: UiServices) -> list[QueueDepth] | None:
    try:
        return ui.queues.depths()
    except Exception:  # an outage shows as "unavailable", never as a broken page
        return None


def _recent(
    services: GatewayServices,
    principal: Principal,
    status: str | None,
    message_type: str | None,
    source: str | None,
) -> list[dict[str, Any]]:
    sources = tuple(s for s in principal.read if source is None or s == source)
    if not sources:
        return []
    items, _ = services.reader.page(sources, status, message_type, RECENT, None)
    return items


def age(value: Any, now: datetime) -> str:
    at = activity.parse_time(value)
    if at is None:
        return "?"
    seconds = max(0, int((now - at).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h" if seconds < 172800 else f"{seconds // 86400} d"


@router.get("")
async def overview(
    request: Request,
    services: Services,
    status: Annotated[str | None, Query(max_length=20)] = None,
    type: Annotated[str | None, Query(max_length=40)] = None,
    source: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    principal = await session_principal(request, services.verifier)
    if principal is None:
        return _to_login(request)
    status = status if status in STATUSES else None
    message_type = type.replace("_", "^", 1) if type else None
    source = source or None
    now = clock()

    def gather() -> tuple[activity.Activity, list[QueueDepth] | None, list[dict[str, Any]]]:
        return (
            activity.last_hour(services.reader, principal.read, lambda: now),
            _queue_depths(_ui(services)),
            _recent(services, principal, status, message_type, source),
        )

    chart, queues, items = await run_in_threadpool(gather)
    context = {
        "principal": principal,
        "chart": chart,
        "queues": queues,
        "items": items,
        "now": now,
        "age": age,
        "filters": {"status": status or "", "type": type or "", "source": source or ""},
        "statuses": STATUSES,
    }
    return _page(request, "overview.html", context)


def _read_json(services: GatewayServices, uri: Any) -> Any:
    body = services.reader.read_object(uri) if isinstance(uri, str) and uri else None
    if body is None:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _message_view(services: GatewayServices, item: dict[str, Any]) -> dict[str, Any]:
    raw_bytes = services.reader.read_object(item["raw"]) if item.get("raw") else None
    raw = raw_bytes.decode("utf-8", "replace") if raw_bytes is not None else None
    error = item.get("error") if isinstance(item.get("error"), dict) else None
    document = _read_json(services, item.get("parsed"))
    if isinstance(document, dict):
        rows = segments.from_document(document, error)
    elif raw is not None:
        rows = segments.from_er7(raw, None, error)
    else:
        rows = []
    fhir = _read_json(services, item.get("fhir"))
    return {
        "item": item,
        "raw": raw,
        "rows": rows,
        "error": error,
        "steps": item.get("steps") if isinstance(item.get("steps"), list) else None,
        "fhir": json.dumps(fhir, indent=2, ensure_ascii=False) if fhir is not None else None,
    }


@router.get("/messages/{message_id}")
async def message_page(message_id: str, request: Request, services: Services) -> Response:
    principal = await session_principal(request, services.verifier)
    if principal is None:
        return _to_login(request)

    def visible() -> dict[str, Any] | None:
        item = services.reader.get(message_id) if len(message_id) <= 64 else None
        if item is None or not is_message(item) or item.get("source") not in principal.read:
            return None
        return _message_view(services, item)

    view = await run_in_threadpool(visible)
    if view is None:
        return _page(request, "not_found.html", {"principal": principal}, 404)
    return _page(request, "message.html", {"principal": principal, "now": clock(), "age": age, **view})
