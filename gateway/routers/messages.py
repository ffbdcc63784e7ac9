"""/v1/messages: ingest ER7 and read back what the lake holds."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from gateway import ack
from gateway.deps import CurrentPrincipal, Services
from gateway.ingest import IngestService, MediaType, check_media_type, choose_source, unexpected
from gateway.lake_reader import (
    CursorError,
    catalog_timestamp,
    decode_cursor,
    encode_cursor,
    is_message,
    public_item,
)
from gateway.message_events import events_view
from gateway.outcomes import BatchProcessing, IngestOutcome, IngestResult
from gateway.problems import Problem, not_found
from hub.document import ParsedDocument
from hub.telemetry import call_with_parent
from hub.topology import FHIR_MAPPED_TYPES

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/messages", tags=["messages"])

ER7_EXAMPLE = (
    "MSH|^~\\&|LAB|HOSP_A|LAKE|AWS|20260101120000||ADT^A01|MSG00001|P|2.5.1\rPID|1||MRN1^^^HOSP_A||DOE^JOHN\r"
)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Problem(413, "too_large", f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Problem(413, "too_large", f"body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise client_gone(size, declared) from None
    return b"".join(chunks)


def client_gone(received: int, declared: str | None) -> Problem:
    """The client closed its connection before the whole body arrived: nothing to ingest, nobody to
    answer (the response is never read). One INFO line: a sender's network problem, not ours."""
    shown = declared if declared and declared.isdigit() and len(declared) <= 20 else "-"
    log.info("client disconnected mid-body bytes=%d declared=%s", received, shown)
    return Problem(400, "client_disconnected", "the connection was closed before the whole body arrived")


ACK_MEDIA_TYPES = ("application/hl7-v2", "x-application/hl7-v2+er7")


def ack_media_type(accept: str | None) -> str | None:
    """The HL7 media type when the Accept header prefers it to JSON ("HL7 over HTTP"), else None."""
    if not accept:
        return None
    ranges: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        essence, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if essence and quality > 0:
            ranges.append((-quality, position, essence.lower()))
    for _, _, essence in sorted(ranges):
        if essence in ACK_MEDIA_TYPES:
            return essence
        if essence in ("application/json", "application/*", "*/*"):
            return None
    return None


async def _read_for_ack(request: Request, limit: int) -> tuple[bytes, bool]:
    """The body, or — when it is over the limit — its head (enough for the ACK) and True."""
    declared = request.headers.get("content-length")
    declared_too_large = bool(declared and declared.isdigit() and int(declared) > limit)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            chunks.append(chunk)
            if size > limit or (declared_too_large and size >= ack.HEAD_BYTES):
                return b"".join(chunks)[: ack.HEAD_BYTES], True
    except ClientDisconnect:
        raise client_gone(size, declared) from None
    return b"".join(chunks), declared_too_large


def _ingest_for_ack(
    ingest: IngestService, body: bytes, media: MediaType, source: str | None, refused: Problem | None
) -> tuple[ack.Received, IngestResult | None, Problem | None]:
    received = ack.from_bytes(body, media.charset)
    if refused is not None or source is None:
        return received, None, refused
    try:
        return received, ingest.ingest(body, media, source), None
    except Problem as problem:
        return received, None, problem
    except Exception as exc:  # a defect: AR with ERR-3 207 and the error id, never a JSON 500
        return received, None, unexpected(exc)


def _iana_charset(codec: str) -> str:
    return f"ISO-8859-{codec[8:]}" if codec.startswith("iso8859-") else codec


async def _post_for_ack(
    request: Request,
    services: Services,
    principal: CurrentPrincipal,
    content_type: str | None,
    x_source: str | None,
    answer_type: str,
) -> Response:
    """POST answered with the HL7 ACK the MLLP listener would send; the HTTP status is unchanged."""
    limit = services.settings.max_body_bytes
    body, too_large = await _read_for_ack(request, limit)
    media = MediaType.parse(content_type)
    source: str | None = None
    refused: Problem | None = None
    try:
        source = choose_source(principal, x_source)
        media = check_media_type(content_type)
        if too_large:
            raise Problem(413, "too_large", f"body exceeds the limit of {limit} bytes")
    except Problem as exc:
        refused = exc
    received, result, problem = await run_in_threadpool(
        call_with_parent, request.headers, _ingest_for_ack, services.ingest, body, media, source, refused
    )
    answer = ack.acknowledge(received, problem, result=result, always=True)
    assert answer is not None  # always=True
    headers = dict(problem.headers) if problem else {}
    message_id: str | None
    if isinstance(result, IngestOutcome):
        message_id = result.id
    else:
        message_id = problem.details.get("id") if problem else None
    if message_id and (problem is None or problem.status == 409):
        headers["Location"] = f"/v1/messages/{message_id}"
    return Response(
        answer.data,
        status_code=problem.status if problem else 202,
        media_type=f"{answer_type}; charset={_iana_charset(received.codec)}",
        headers=headers,
    )


@router.post(
    "",
    status_code=202,
    summary="Send one HL7 v2 message (ER7)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                t: {"schema": {"type": "string"}, "example": ER7_EXAMPLE} for t in ("application/hl7-v2",)
            },
        }
    },
    responses={
        202: {
            "description": "accepted: in the hub. With `Accept: application/hl7-v2` (or"
            " `x-application/hl7-v2+er7`) every answer below is an HL7 ACK instead of JSON (AA/AE/AR,"
            " CA/CE/CR in enhanced mode) with the same HTTP status",
            "content": {"application/json": {}, "application/hl7-v2": {"schema": {"type": "string"}}},
        },
        400: {"description": "unreadable message (names segment, field and reason)"},
        401: {"description": "missing or invalid token"},
        403: {"description": "token may not write for this source"},
        409: {"description": "duplicate of an accepted message"},
        413: {"description": "body too large"},
        415: {"description": "not an ER7 media type"},
        503: {"description": "hub or dedup store unavailable; retry"},
    },
)
async def post_message(
    request: Request,
    services: Services,
    principal: CurrentPrincipal,
    content_type: Annotated[str | None, Header()] = None,
    x_source: Annotated[str | None, Header()] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    answer_type = ack_media_type(accept)
    if answer_type is not None:
        return await _post_for_ack(request, services, principal, content_type, x_source, answer_type)
    source = choose_source(principal, x_source)
    media = check_media_type(content_type)
    body = await _read_body(request, services.settings.max_body_bytes)
    # Kept in a worker thread: the real dedup store and hub are blocking AWS calls. With in-memory
    # fakes calling it inline is ~15% faster (bench/bench_gateway.py), but would stall the event loop.
    result = await run_in_threadpool(
        call_with_parent, request.headers, services.ingest.ingest, body, media, source, split_later=True
    )
    if isinstance(result, IngestOutcome):
        headers = {"Location": f"/v1/messages/{result.id}"}
    elif isinstance(result, BatchProcessing):  # a large batch, split after the answer
        headers = {"Location": result.location}
    else:
        headers = {}
    return JSONResponse(result.to_dict(), status_code=202, headers=headers)


def _visible_item(services: Services, principal: CurrentPrincipal, message_id: str) -> dict[str, Any]:
    item = services.reader.get(message_id) if len(message_id) <= 64 else None
    if item is None or not is_message(item) or item.get("source") not in principal.read:
        raise not_found(message_id)
    return item


@router.get("/{message_id}", summary="The catalog entry of one message")
def get_message(message_id: str, services: Services, principal: CurrentPrincipal) -> dict[str, Any]:
    return public_item(_visible_item(services, principal, message_id))


@router.get("/{message_id}/events", summary="The message's path: each service's step, in order")
def get_events(message_id: str, services: Services, principal: CurrentPrincipal) -> dict[str, Any]:
    return events_view(_visible_item(services, principal, message_id))


def _object(services: Services, item: dict[str, Any], field: str) -> bytes:
    uri = item.get(field)
    body = services.reader.read_object(uri) if uri else None
    if body is None:
        raise Problem(
            404,
            "not_available",
            f"the {field} form of message {item['id']!r} is not in the lake (status: {item.get('status')})",
        )
    return body


@router.get("/{message_id}/raw", summary="The message as received (ER7)", response_class=Response)
def get_raw(message_id: str, services: Services, principal: CurrentPrincipal) -> Response:
    item = _visible_item(services, principal, message_id)
    return Response(_object(services, item, "raw"), media_type="application/hl7-v2; charset=utf-8")


@router.get(
    "/{message_id}/parsed",
    summary="The parsed document (JSON)",
    # documents the body in OpenAPI only: the bytes are served as the lake stored them
    responses={200: {"model": ParsedDocument, "description": "docs/schemas/parsed-document.schema.json"}},
)
def get_parsed(message_id: str, services: Services, principal: CurrentPrincipal) -> Response:
    item = _visible_item(services, principal, message_id)
    return Response(_object(services, item, "parsed"), media_type="application/json")


@router.get(
    "/{message_id}/fhir",
    summary="The message as a FHIR R4 transaction Bundle (JSON), once the fhir-r4 worker converted it",
    response_class=Response,
)
def get_fhir(message_id: str, services: Services, principal: CurrentPrincipal) -> Response:
    item = _visible_item(services, principal, message_id)
    message_type = item.get("messageType")
    if message_type not in FHIR_MAPPED_TYPES:
        mapped = ", ".join(FHIR_MAPPED_TYPES)
        detail = (
            f"message {message_id!r} is of type {message_type!r}, which is not converted to FHIR ({mapped})"
        )
        raise Problem(404, "not_available", detail)
    if not item.get("fhir"):
        failed = (item.get("fhirError") or {}).get("reason")
        why = (
            f"its conversion failed: {failed}"
            if failed
            else f"not converted yet (status: {item.get('status')})"
        )
        raise Problem(404, "not_available", f"message {message_id!r} has no FHIR bundle: {why}")
    return Response(_object(services, item, "fhir"), media_type="application/fhir+json")


@router.get("", summary="Messages you may read, newest first")
def list_messages(
    services: Services,
    principal: CurrentPrincipal,
    status: Annotated[str | None, Query(pattern="^(received|parsed|failed)$")] = None,
    type: Annotated[str | None, Query(max_length=40, description="e.g. ADT^A01 (or ADT_A01)")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    source: Annotated[str | None, Query(max_length=64, description="one of the sources you may read")] = None,
    since: Annotated[
        str | None, Query(max_length=40, description="ISO 8601 time: only messages received since")
    ] = None,
) -> dict[str, Any]:
    try:
        before = decode_cursor(cursor) if cursor else None
    except CursorError as exc:
        raise Problem(400, "bad_cursor", str(exc)) from None
    try:
        received_since = catalog_timestamp(since) if since else None
    except ValueError:
        raise Problem(400, "bad_since", f"since {since!r} is not an ISO 8601 time") from None
    message_type = type.replace("_", "^", 1) if type else None
    if not principal.read:
        return {"items": [], "next": None}
    narrowing = {"source": source, "since": received_since}
    items, next_key = services.reader.page(principal.read, status, message_type, limit, before, **narrowing)
    return {"items": [public_item(i) for i in items], "next": encode_cursor(next_key) if next_key else None}


def problem_response(problem: Problem) -> JSONResponse:
    return JSONResponse(problem.body(), status_code=problem.status, headers=problem.headers)
