"""The daily-work commands of the `hl7lake` CLI: send, ls, show, tail (their parsers and entry points)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_USER = "sender@hospital-a.example"  # the dev sender (hl7lake/dev-users.yaml)
DEFAULT_MLLP = "127.0.0.1:2575"


def _add_connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the gateway (default {DEFAULT_URL})")
    parser.add_argument("--token", help="a bearer token (default: one for --user from the emulator)")
    parser.add_argument("--user", default=DEFAULT_USER, help=f"dev user to get a token for ({DEFAULT_USER})")


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--status", choices=("received", "parsed", "failed"))
    parser.add_argument("--type", help="message type, e.g. ADT^A01")
    parser.add_argument("--source", help="one of the sources you may read")
    parser.add_argument("--json", action="store_true", help="one JSON object per line (for jq)")


def _filters(args: argparse.Namespace) -> dict[str, str]:
    from hl7lake.gateway_client import ClientError
    from hl7lake.since import since_timestamp

    filters = {k: v for k in ("status", "type", "source") if (v := getattr(args, k))}
    if getattr(args, "since", None):
        try:
            filters["since"] = since_timestamp(args.since)
        except ValueError:
            raise ClientError(
                f"--since {args.since!r}: give a duration (30m, 1h, 2d) or an ISO time"
            ) from None
    return filters


def _run(name: str, args: argparse.Namespace, body: Any) -> int:
    """Runs a command; a ClientError or an unreachable gateway becomes one line and exit 1."""
    import httpx

    from hl7lake.gateway_client import ClientError

    try:
        return int(body(args))
    except ClientError as exc:
        print(f"hl7lake {name}: {exc}", file=sys.stderr)
    except httpx.TransportError as exc:
        print(f"hl7lake {name}: cannot reach {args.url}: {exc.__class__.__name__}", file=sys.stderr)
    return 1


def _client(args: argparse.Namespace) -> Any:
    from hl7lake.gateway_client import open_client, resolve_token

    return open_client(args.url, resolve_token(args.token, args.user))


def _send(args: argparse.Namespace) -> int:
    from hl7lake.gateway_client import ClientError
    from hl7lake.send import Sender, run_send

    sender: Sender
    if args.mllp is not None:
        from hl7lake.send_mllp import MllpSender

        try:
            sender = MllpSender(args.mllp)
        except ValueError as exc:
            raise ClientError(f"--mllp: {exc}") from None
        return run_send(args.paths, sender, concurrency=args.concurrency)
    from hl7lake.send_http import HttpSender

    with _client(args) as client:
        return run_send(args.paths, HttpSender(client), concurrency=args.concurrency)


def _ls(args: argparse.Namespace) -> int:
    from hl7lake.browse import run_ls

    with _client(args) as client:
        return run_ls(client, _filters(args), args.limit, sys.stdout, args.json)


def _show(args: argparse.Namespace) -> int:
    from hl7lake.browse import run_show

    with _client(args) as client:
        return run_show(client, args.id, args.view, sys.stdout, args.json)


def _tail(args: argparse.Namespace) -> int:
    from hl7lake.browse import run_tail

    with _client(args) as client:
        return run_tail(client, _filters(args), sys.stdout, args.json)


def add_daily_commands(sub: Any) -> None:
    """Registers send, ls, show and tail on the `hl7lake` subparsers."""
    send = sub.add_parser(
        "send",
        help="send HL7 files, folders (recursive) or globs to the gateway (HTTP, or MLLP with --mllp); "
        "exit 1 if any message was rejected",
    )
    send.add_argument("paths", nargs="+", metavar="PATH")
    send.add_argument(
        "--mllp", nargs="?", const=DEFAULT_MLLP, metavar="HOST:PORT", help=f"send over MLLP ({DEFAULT_MLLP})"
    )
    send.add_argument("--concurrency", type=int, default=4, help="files in flight at once (default 4)")
    _add_connection(send)
    send.set_defaults(func=lambda a: _run("send", a, _send))

    ls = sub.add_parser("ls", help="list messages you may read, newest first")
    _add_filters(ls)
    ls.add_argument("--since", help="received since: 30m, 1h, 2d or an ISO 8601 time")
    ls.add_argument("--limit", type=int, default=20)
    _add_connection(ls)
    ls.set_defaults(func=lambda a: _run("ls", a, _ls))

    show = sub.add_parser("show", help="one message: its catalog entry, or --raw, --parsed, --events")
    show.add_argument("id")
    views = show.add_mutually_exclusive_group()
    for view in ("raw", "parsed", "events"):
        views.add_argument(f"--{view}", dest="view", action="store_const", const=view)
    show.set_defaults(view="entry")
    show.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    _add_connection(show)
    show.set_defaults(func=lambda a: _run("show", a, _show))

    tail = sub.add_parser("tail", help="follow new messages and their status changes (Ctrl-C stops)")
    _add_filters(tail)
    _add_connection(tail)
    tail.set_defaults(func=lambda a: _run("tail", a, _tail))
