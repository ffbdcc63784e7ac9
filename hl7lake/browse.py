"""`hl7lake ls`, `show` and `tail`: the gateway's read API (GET /v1/messages...) as tables or JSON lines."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import httpx

from hl7lake.gateway_client import ClientError, problem_text
from hl7lake.tables import render_table

PAGE_LIMIT = 100  # the list API's largest page
LIST_COLUMNS = ("id", "receivedAt", "status", "messageType", "source", "controlId")
TAIL_FIRST = 10
EVENT_COLUMNS = ("service", "instance", "event", "outcome", "tries", "sinceReceiptMs", "reason")


def _checked(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise ClientError(problem_text(response))
    return response


def list_pages(client: httpx.Client, filters: dict[str, str], limit: int) -> Iterator[dict[str, Any]]:
    """Up to `limit` catalog entries, newest first, following the cursor."""
    cursor: str | None = None
    left = limit
    while left > 0:
        params = {**filters, "limit": str(min(left, PAGE_LIMIT))} | ({"cursor": cursor} if cursor else {})
        page = _checked(client.get("/v1/messages", params=params)).json()
        yield from page["items"][:left]
        left -= len(page["items"])
        cursor = page.get("next")
        if not cursor:
            return


def error_reason(item: dict[str, Any]) -> str:
    error = item.get("error")
    return str(error.get("reason") or error.get("message") or "") if isinstance(error, dict) else ""


def row(item: dict[str, Any]) -> list[object]:
    return [item.get(c) for c in LIST_COLUMNS] + [error_reason(item)]


def print_items(items: list[dict[str, Any]], out: TextIO, as_json: bool) -> None:
    if as_json:
        for item in items:
            out.write(json.dumps(item) + "\n")
    elif items:
        out.write(render_table([*LIST_COLUMNS, "error"], [row(i) for i in items]) + "\n")


def run_ls(client: httpx.Client, filters: dict[str, str], limit: int, out: TextIO, as_json: bool) -> int:
    items = list(list_pages(client, filters, limit))
    print_items(items, out, as_json)
    if not as_json and not items:
        print("no messages", file=sys.stderr)
    return 0


def run_show(client: httpx.Client, message_id: str, view: str, out: TextIO, as_json: bool) -> int:
    """`view` is entry (the catalog entry), raw, parsed or events."""
    if view == "raw":
        raw = _checked(client.get(f"/v1/messages/{message_id}/raw")).content
        out.write(raw.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n"))
        return 0
    if view == "parsed":
        parsed = _checked(client.get(f"/v1/messages/{message_id}/parsed")).json()
        out.write(json.dumps(parsed) + "\n" if as_json else json.dumps(parsed, indent=2) + "\n")
        return 0
    if view == "events":
        return _show_events(client, message_id, out, as_json)
    entry = _checked(client.get(f"/v1/messages/{message_id}")).json()
    if as_json:
        out.write(json.dumps(entry) + "\n")
    else:
        width = max(len(k) for k in entry)
        for key, value in entry.items():
            shown = json.dumps(value) if isinstance(value, dict | list) else value
            out.write(f"{key.ljust(width)}  {'' if shown is None else shown}\n")
    return 0


def _show_events(client: httpx.Client, message_id: str, out: TextIO, as_json: bool) -> int:
    response = client.get(f"/v1/messages/{message_id}/events")
    if response.status_code == 404 and _is_unknown_route(response):
        raise ClientError("this gateway has no events API (GET /v1/messages/{id}/events): it is older")
    events = _checked(response).json().get("events", [])
    if as_json:
        for event in events:
            out.write(json.dumps({"id": message_id, **event}) + "\n")
    elif events:
        out.write(render_table(EVENT_COLUMNS, [[e.get(c) for c in EVENT_COLUMNS] for e in events]) + "\n")
    else:
        print(f"no events recorded for {message_id}", file=sys.stderr)
    return 0


def _is_unknown_route(response: httpx.Response) -> bool:
    """FastAPI answers a route it lacks with {"detail": "Not Found"}; the API's own 404 has "error"."""
    try:
        body = response.json()
    except ValueError:
        return True
    return not (isinstance(body, dict) and "error" in body)


def run_tail(
    client: httpx.Client,
    filters: dict[str, str],
    out: TextIO,
    as_json: bool,
    *,
    interval: float = 1.0,
    polls: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """New entries and status changes of the newest page, polled every `interval` s until Ctrl-C; it
    starts with the last `TAIL_FIRST` entries, like `tail -f`."""
    seen: dict[str, Any] = {}
    count = 0
    try:
        while polls is None or count < polls:
            if count:
                sleep(interval)
            count += 1
            page = list(list_pages(client, filters, PAGE_LIMIT))
            changed = [i for i in reversed(page) if seen.get(i["id"]) != i.get("status")]
            if count == 1:
                changed = changed[-TAIL_FIRST:]
            seen = {i["id"]: i.get("status") for i in page}  # older ones left the page for good
            for item in changed:
                out.write(json.dumps(item) + "\n" if as_json else _tail_line(item) + "\n")
            out.flush()
    except KeyboardInterrupt:
        return 0
    return 0


def _tail_line(item: dict[str, Any]) -> str:
    return "  ".join(str(c) for c in row(item) if c not in (None, ""))
