"""`hl7lake ls`, `show` and `tail` against the gateway app with an in-memory lake (and fakes)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hl7lake.browse import run_ls, run_show, run_tail
from hl7lake.cli import build_parser, main
from hl7lake.gateway_client import ClientError
from hl7lake.since import since_timestamp
from tests.unit.test_gateway_api import Stack
from tests.unit.test_list_filters import ROWS, item

READ_AB = {"custom:read": "hospital-a,hospital-b"}


@pytest.fixture
def stack() -> Iterator[Stack]:
    stack = Stack()
    for row in ROWS:
        stack.reader.items[row[0]] = item(*row)
    stack.reader.objects["s3://lake/raw/M0.hl7"] = b"MSH|^~\\&|A\rPID|1\r"
    stack.reader.items["M0"]["parsed"] = "s3://lake/parsed/M0.json"
    stack.reader.objects["s3://lake/parsed/M0.json"] = b'{"MSH": {"9": "ADT^A01"}}'
    stack.client.headers["Authorization"] = stack.auth(**READ_AB)["Authorization"]
    yield stack


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_ls_json_lines_are_the_api_items(stack: Stack) -> None:
    out = io.StringIO()
    assert run_ls(stack.client, {}, 20, out, as_json=True) == 0
    lines = json_lines(out.getvalue())
    assert [i["id"] for i in lines] == ["M3", "M2", "M1", "M0"]
    assert lines[0] == stack.client.get("/v1/messages").json()["items"][0]


def test_ls_filters_reach_the_api(stack: Stack) -> None:
    out = io.StringIO()
    filters = {"status": "parsed", "type": "ADT^A01", "source": "hospital-a", "since": "2026-01-02T00:00:00Z"}
    run_ls(stack.client, filters, 20, out, as_json=True)
    assert [i["id"] for i in json_lines(out.getvalue())] == ["M3"]


def test_ls_follows_the_cursor_up_to_its_limit() -> None:
    pages = {None: (["A", "B"], "c1"), "c1": (["C", "D"], "c2"), "c2": (["E"], None)}
    seen: list[dict[str, str]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append(params)
        ids, nxt = pages[params.get("cursor")]
        return httpx.Response(200, json={"items": [{"id": i} for i in ids], "next": nxt})

    client = httpx.Client(base_url="http://gw", transport=httpx.MockTransport(handle))
    out = io.StringIO()
    run_ls(client, {"status": "failed"}, 3, out, as_json=True)
    assert [i["id"] for i in json_lines(out.getvalue())] == ["A", "B", "C"]
    assert seen == [{"status": "failed", "limit": "3"}, {"status": "failed", "limit": "1", "cursor": "c1"}]


def test_ls_table_on_a_terminal(stack: Stack) -> None:
    out = io.StringIO()
    run_ls(stack.client, {"source": "hospital-b"}, 20, out, as_json=False)
    header, _rule, row = out.getvalue().splitlines()
    assert header.split() == ["id", "receivedAt", "status", "messageType", "source", "controlId", "error"]
    assert row.split() == ["M1", "2026-01-02T00:00:00.000Z", "parsed", "ADT^A01", "hospital-b", "CM1"]


def test_show_entry_raw_and_parsed(stack: Stack) -> None:
    out = io.StringIO()
    run_show(stack.client, "M0", "entry", out, as_json=True)
    assert json_lines(out.getvalue()) == [stack.client.get("/v1/messages/M0").json()]
    out = io.StringIO()
    run_show(stack.client, "M0", "raw", out, as_json=False)
    assert out.getvalue() == "MSH|^~\\&|A\nPID|1\n"
    out = io.StringIO()
    run_show(stack.client, "M0", "parsed", out, as_json=True)
    assert json_lines(out.getvalue()) == [{"MSH": {"9": "ADT^A01"}}]


def test_show_unknown_id_is_a_client_error(stack: Stack) -> None:
    with pytest.raises(ClientError, match="404 not_found"):
        run_show(stack.client, "nope", "entry", io.StringIO(), as_json=False)


EVENTS = {
    "id": "M0",
    "events": [
        {
            "service": "lake-writer",
            "instance": "i-1",
            "event": "message.parsed",
            "outcome": "done",
            "reason": None,
            "receivedAt": "2026-01-01T00:00:00.000Z",
            "doneAt": "2026-01-01T00:00:00.120Z",
            "tries": 1,
            "sinceReceiptMs": 120,
        }
    ],
}


def events_client(response: httpx.Response) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/messages/M0/events"
        return response

    return httpx.Client(base_url="http://gw", transport=httpx.MockTransport(handle))


def test_show_events_as_json_lines_and_table() -> None:
    out = io.StringIO()
    run_show(events_client(httpx.Response(200, json=EVENTS)), "M0", "events", out, as_json=True)
    assert json_lines(out.getvalue()) == [{"id": "M0", **EVENTS["events"][0]}]
    out = io.StringIO()
    run_show(events_client(httpx.Response(200, json=EVENTS)), "M0", "events", out, as_json=False)
    assert out.getvalue().splitlines()[2].split() == [
        "lake-writer",
        "i-1",
        "message.parsed",
        "done",
        "1",
        "120",
    ]


def test_show_events_from_an_older_gateway_says_so() -> None:
    older = events_client(httpx.Response(404, json={"detail": "Not Found"}))
    with pytest.raises(ClientError, match="no events API"):
        run_show(older, "M0", "events", io.StringIO(), as_json=False)
    unknown = events_client(httpx.Response(404, json={"error": "not_found", "message": "no message 'M0'"}))
    with pytest.raises(ClientError, match="404 not_found"):
        run_show(unknown, "M0", "events", io.StringIO(), as_json=False)


def test_tail_prints_new_entries_and_status_changes(stack: Stack) -> None:
    def between_polls(_: float) -> None:
        stack.reader.items["M0"]["status"] = "failed"
        stack.reader.items["M5"] = item("M5", "hospital-b", "received", "ORU^R01", 6)

    out = io.StringIO()
    assert run_tail(stack.client, {}, out, as_json=True, polls=2, sleep=between_polls) == 0
    lines = [(i["id"], i["status"]) for i in json_lines(out.getvalue())]
    first = [("M0", "parsed"), ("M1", "parsed"), ("M2", "failed"), ("M3", "parsed")]  # oldest first
    assert lines == [*first, ("M0", "failed"), ("M5", "received")]


def test_tail_passes_filters_and_stops_cleanly_on_ctrl_c(stack: Stack) -> None:
    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    out = io.StringIO()
    assert run_tail(stack.client, {"status": "failed"}, out, as_json=True, sleep=interrupt) == 0
    assert [i["id"] for i in json_lines(out.getvalue())] == ["M2"]


def test_since_durations_and_times() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert since_timestamp("1h", now) == "2026-01-02T11:00:00.000Z"
    assert since_timestamp("2d", now) == "2025-12-31T12:00:00.000Z"
    assert since_timestamp("2026-01-01T10:00:00+02:00") == "2026-01-01T08:00:00.000Z"
    with pytest.raises(ValueError):
        since_timestamp("yesterday")


def test_command_line_of_ls_show_tail() -> None:
    args = build_parser().parse_args(["ls", "--status", "failed", "--type", "ADT^A01", "--since", "1h"])
    assert (args.status, args.type, args.since, args.limit, args.json) == (
        "failed",
        "ADT^A01",
        "1h",
        20,
        False,
    )
    assert build_parser().parse_args(["show", "X", "--events"]).view == "events"
    assert build_parser().parse_args(["show", "X"]).view == "entry"
    assert build_parser().parse_args(["tail", "--json", "--source", "s"]).source == "s"


def test_unreachable_gateway_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "--url", "http://127.0.0.1:9", "--token", "T"]) == 1
    assert capsys.readouterr().err.startswith("hl7lake ls: cannot reach http://127.0.0.1:9")


def test_bad_since_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "--since", "soon", "--token", "T"]) == 1
    assert "--since 'soon'" in capsys.readouterr().err
