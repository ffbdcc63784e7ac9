"""The `hl7lake` command: one entrypoint per service, the same locally and in containers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.config import GATEWAY_PORT
from hl7lake.daily_commands import add_daily_commands
from hl7lake.logs import configure
from hub.config import LOCALHOST, SettingsError


def _cmd_up(args: argparse.Namespace) -> int:
    from hl7lake.up import run_up

    return run_up(fresh=args.fresh)


def _cmd_gateway(args: argparse.Namespace) -> int:
    configure("gateway")
    from gateway.bootstrap import run

    run()
    return 0


def _cmd_mllp(args: argparse.Namespace) -> int:
    configure("mllp")
    from gateway.mllp.bootstrap import run

    try:
        run()
    except OSError as exc:  # most often: the port is taken
        print(f"hl7lake mllp: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    configure(args.name)
    from hl7lake.workers import run_worker_by_name

    return run_worker_by_name(args.name)


def _cmd_bootstrap(args: argparse.Namespace) -> int:
    configure("bootstrap")
    from hl7lake.provision import provision

    result = provision(dev_users=args.dev_users, max_receive_count=args.max_receive_count)
    print(
        json.dumps(
            {
                "topic": result.topic_arn,
                "queues": result.queues,
                "userPool": result.user_pool_id,
                "clientId": result.client_id,
                "users": result.users,
            },
            indent=2,
        )
    )
    return 0


def _cmd_token(args: argparse.Namespace) -> int:
    from hl7lake.emulator import use_local_emulator_by_default
    from hl7lake.tokens import TokenError, get_token

    use_local_emulator_by_default()

    try:
        print(get_token(args.user, args.password, access=args.access))
    except TokenError as exc:
        print(f"hl7lake token: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_parse(args: argparse.Namespace) -> int:
    from hl7lake.offline import parse_files

    return parse_files([Path(p) for p in args.files], charset=args.charset)


def _cmd_healthcheck(args: argparse.Namespace) -> int:
    from hl7lake.health import check_heartbeat, check_tcp, check_url

    if args.worker:
        ok, detail = check_heartbeat(args.worker, args.max_age)
    elif args.tcp:
        ok, detail = check_tcp(args.tcp)
    else:
        ok, detail = check_url(args.url)
    print(detail, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def _cmd_dlq(args: argparse.Namespace) -> int:
    configure("dlq")
    from botocore.exceptions import BotoCoreError, ClientError

    from hl7lake.emulator import use_local_emulator_by_default
    from hub import aws
    from hub.runtime import WorkerSettings
    from hub.topology import subscription

    use_local_emulator_by_default()
    settings = WorkerSettings()
    try:
        sub = subscription(args.name)
    except LookupError as exc:
        print(f"hl7lake dlq: {exc}", file=sys.stderr)
        return 2
    try:
        return _dlq_run(args, aws.client("sqs", settings.region), settings, sub.name)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
            print(
                f"hl7lake dlq: a queue of {sub.name} does not exist: run `hl7lake bootstrap`", file=sys.stderr
            )
            return 2
        print(f"hl7lake dlq: AWS refused the request: {code or exc.__class__.__name__}", file=sys.stderr)
        return 1
    except BotoCoreError as exc:  # unreachable endpoint, no credentials, timeouts
        print(f"hl7lake dlq: cannot reach SQS: {exc}", file=sys.stderr)
        return 1


def _dlq_run(args: argparse.Namespace, sqs: Any, settings: Any, name: str) -> int:
    """Lists or redrives; AWS errors propagate to `_cmd_dlq`, which turns them into one line."""
    from hub import dlq

    dlq_url = sqs.get_queue_url(QueueName=settings.dlq_name(name))["QueueUrl"]
    if args.redrive:
        queue_url = sqs.get_queue_url(QueueName=settings.queue_name(name))["QueueUrl"]
        print(json.dumps(dlq.redrive(sqs, dlq_url, queue_url).to_dict()))
        return 0
    letters = dlq.peek(sqs, dlq_url, args.limit)
    for letter in letters:
        print(json.dumps({"id": letter.message_id, "event": letter.event, "tries": letter.receive_count,
                          "failures": letter.failures, "reason": letter.explanation()}))  # fmt: skip
    print(f"{len(letters)} message(s) in {settings.dlq_name(name)}", file=sys.stderr)
    return 0


def _cmd_hub(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from hl7lake.emulator import use_local_emulator_by_default
    from hl7lake.hub_command import describe_aws_error, run_hub

    use_local_emulator_by_default()
    try:
        return run_hub(check_wiring=args.check, as_json=args.json)
    except (ClientError, BotoCoreError, LookupError) as exc:
        print(f"hl7lake hub: {describe_aws_error(exc)}", file=sys.stderr)
        return 2


def _cmd_status(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from hl7lake.emulator import use_local_emulator_by_default
    from hl7lake.hub_command import describe_aws_error
    from hl7lake.status import build_report, status_text

    use_local_emulator_by_default()
    try:
        report = build_report(args.max_age)
    except (ClientError, BotoCoreError, LookupError) as exc:
        print(f"hl7lake status: {describe_aws_error(exc)}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else status_text(report))
    return 0 if report.healthy else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hl7lake", description="HL7 v2 data lake on AWS (or its emulator).")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start emulator, bootstrap, gateway and workers (foreground)")
    up.add_argument(
        "--fresh", action="store_true", help="delete the emulator's saved state (HL7LAKE_STATE_DIR) first"
    )
    up.set_defaults(func=_cmd_up)
    sub.add_parser("gateway", help="run the HTTP front door").set_defaults(func=_cmd_gateway)
    sub.add_parser(
        "mllp", help="run the MLLP listener (HL7 v2 over TCP/TLS, answered with ACKs)"
    ).set_defaults(func=_cmd_mllp)
    worker = sub.add_parser("worker", help="run one hub subscriber")
    worker.add_argument("name", help="er7-staging or lake-writer")
    worker.set_defaults(func=_cmd_worker)
    boot = sub.add_parser("bootstrap", help="create or update every resource (idempotent)")
    boot.add_argument("--no-dev-users", dest="dev_users", action="store_false", help="do not seed dev users")
    boot.add_argument(
        "--max-receive-count",
        type=int,
        default=10,
        help="receives without an outcome (worker killed, answer lost) before SQS dead-letters a message",
    )
    boot.set_defaults(func=_cmd_bootstrap)
    token = sub.add_parser("token", help="print a bearer token from the Cognito API")
    token.add_argument("--user", required=True, help="e.g. sender@hospital-a.example")
    token.add_argument("--password", help="default: the dev users file's password for that user")
    token.add_argument("--access", action="store_true", help="print the access token instead of the ID token")
    token.set_defaults(func=_cmd_token)
    parse = sub.add_parser(
        "parse",
        help="parse ER7 files offline: one JSON document per good message on stdout, each bad message "
        "on stderr (file, message, segment, field, reason); exit 1 if any failed",
    )
    parse.add_argument("files", nargs="+")
    parse.add_argument("--charset", help="override MSH-18 (e.g. cp1252)")
    parse.set_defaults(func=_cmd_parse)
    dead = sub.add_parser("dlq", help="list a worker's dead-letter queue (ids, never bodies) or redrive it")
    dead.add_argument("name", help="er7-staging or lake-writer")
    dead.add_argument(
        "--redrive",
        action="store_true",
        help="move what the DLQ holds back to the worker's queue (not-envelope bodies stay, reported)",
    )
    dead.add_argument("--limit", type=int, default=100)
    dead.set_defaults(func=_cmd_dlq)
    hub = sub.add_parser(
        "hub", help="print the hub's live wiring: topic, subscriptions, filters, queues, DLQs"
    )
    hub.add_argument(
        "--check",
        action="store_true",
        help="match every event the code publishes against the live filters; exit 1 when an event reaches "
        "nobody or a queue receives what its worker does not handle",
    )
    hub.add_argument("--json", action="store_true", help="JSON instead of a table")
    hub.set_defaults(func=_cmd_hub)
    status = sub.add_parser(
        "status",
        help="services, queues and the last minute on one screen; exit 1 when a DLQ holds messages "
        "or a queue's oldest message is older than --max-age",
    )
    status.add_argument("--max-age", type=float, default=300.0, help="seconds (default 300)")
    status.add_argument("--json", action="store_true", help="JSON instead of text")
    status.set_defaults(func=_cmd_status)
    health = sub.add_parser("healthcheck", help="exit 0 when a service is healthy (container health checks)")
    target = health.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--url", help=f"an HTTP endpoint that must answer 2xx, e.g. http://{LOCALHOST}:{GATEWAY_PORT}/readyz"
    )
    target.add_argument("--worker", help="a worker name: its heartbeat file must be fresh")
    target.add_argument("--tcp", help="HOST:PORT that must accept connections (the MLLP listener)")
    health.add_argument("--max-age", type=float, default=60.0, help="seconds since the worker's last poll")
    health.set_defaults(func=_cmd_healthcheck)
    add_daily_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as exc:  # a mistyped environment variable: say which, not a traceback
        print(f"hl7lake {args.command}: {exc}", file=sys.stderr)
        return 2
