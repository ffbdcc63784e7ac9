"""Soak (and chaos): many messages through `hl7lake up`, then proof that every acknowledged one is in the
lake exactly once, with its raw object, and that nothing is stuck.

    python bench/soak.py [--messages 10000] [--senders 4] [--duplicates 0.1] [--chaos] [--json FILE]

Senders behave like interface engines: mixed HTTP single messages, HTTP batch bodies (10 messages)
and MLLP; 10% of sends repeat a message already acknowledged; a refusal (503/AR, or the connection
dropped) is retried with the same bytes until it is acknowledged. With --chaos, the gateway, each
worker and the MLLP listener are killed with SIGKILL in turn while the load runs (`hl7lake up`
restarts them). Every message has its own MSH-10, so the catalog can be checked per message.

Prints a table and writes JSON; exits non-zero when anything was lost, doubled, stuck or has no raw
object. Needs nothing but the project's venv; starts and stops its own stack on free ports.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from bench_pipeline import corpus, unique
from stack import (
    Stack,
    children_of,
    cpu_seconds,
    peak_rss_mib,
    queue_depths,
    running_stack,
    wait_drained,
)

SB, EB = b"\x0b", b"\x1c\x0d"
SOURCE = "hospital-a"


@dataclass
class Unit:
    channel: str  # "http", "batch" or "mllp"
    messages: list[tuple[str, bytes]]  # (control id, ER7)
    duplicate: bool = False


@dataclass
class Tally:
    acked: set[str] = field(default_factory=set)
    duplicates_answered: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    rejected: list[str] = field(default_factory=list)
    unacknowledged: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, control_id: str, duplicate: bool) -> None:
        with self.lock:
            self.acked.add(control_id)
            self.duplicates_answered += duplicate

    def refused(self, why: str) -> None:
        with self.lock:
            self.refusals[why] += 1


def control_id_of(body: bytes) -> str:
    first = body.replace(b"\n", b"\r").split(b"\r", 1)[0]
    return first.split(first[3:4])[9].decode()


def plan(count: int, duplicates: float, seed: int) -> list[Unit]:
    rng = random.Random(seed)
    bodies = corpus()
    # Batch bodies mix messages with the common delimiters (one body, one set of delimiters per message
    # is legal, but kept out of the soak: it measures durability, not the reader).
    standard = [b for b in bodies if b.removeprefix(b"\xef\xbb\xbf").startswith(b"MSH|^~\\&|")]
    run = f"{int(time.time()) % 100000:05d}"
    units: list[Unit] = []
    made = 0
    while made < count:
        if units and rng.random() < duplicates:
            earlier = rng.choice(units)
            units.append(Unit(rng.choice(["http", "mllp"]), earlier.messages[:1], duplicate=True))
            continue
        roll = rng.random()
        size = 10 if roll < 0.15 else 1
        size = min(size, count - made)
        messages = []
        pool = standard if size > 1 else bodies
        for _ in range(size):
            body = unique(pool[made % len(pool)], made).replace(
                b"BENCH%08d" % made, f"SOAK{run}{made:07d}".encode()
            )
            if not body.endswith((b"\r", b"\n")):
                body += b"\r"  # so that messages can follow each other in a batch body
            messages.append((control_id_of(body), body))
            made += 1
        channel = "batch" if size > 1 else ("mllp" if roll > 0.75 else "http")
        units.append(Unit(channel, messages))
    return units


class Sender:
    def __init__(
        self, url: str, mllp_port: int, token: str, tally: Tally, deadline_s: float, alive: Callable[[], bool]
    ) -> None:
        self.alive = alive
        self.client = httpx.Client(base_url=url, timeout=30)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/hl7-v2"}
        self.mllp_port = mllp_port
        self.tally = tally
        self.deadline_s = deadline_s

    def send(self, unit: Unit) -> None:
        give_up = time.monotonic() + self.deadline_s
        while time.monotonic() < give_up and self.alive():
            try:
                wait = self._try(unit)
            except (httpx.HTTPError, OSError) as exc:  # the front door died under us: retry the same bytes
                self.tally.refused(f"connection: {exc.__class__.__name__}")
                wait = 0.5
            if wait is None:
                return
            time.sleep(wait)
        self.tally.unacknowledged.extend(c for c, _ in unit.messages)

    def _try(self, unit: Unit) -> float | None:
        """None when the unit is settled (acknowledged or rejected), else seconds to wait."""
        if unit.channel == "mllp":
            return self._mllp(unit)
        body = b"".join(m for _, m in unit.messages)
        response = self.client.post("/v1/messages", content=body, headers=self.headers)
        if response.status_code in (503, 429):
            self.tally.refused(f"http {response.status_code} {response.json().get('error')}")
            return min(5.0, float(response.headers.get("Retry-After", "1")))
        if response.status_code == 409:
            self.tally.ack(unit.messages[0][0], duplicate=True)
            return None
        if response.status_code >= 300:
            self.tally.rejected.append(f"{response.status_code} {response.text[:200]}")
            return None
        data = response.json()
        results = data.get("messages") or [data]
        for (control_id, _), result in zip(unit.messages, results, strict=True):
            if result["status"] in ("accepted", "duplicate"):
                self.tally.ack(control_id, result["status"] == "duplicate")
            else:
                self.tally.rejected.append(f"{control_id}: {result['status']}")
        return None

    def _mllp(self, unit: Unit) -> float | None:
        control_id, body = unit.messages[0]
        with socket.create_connection(("127.0.0.1", self.mllp_port), timeout=30) as sock:
            sock.sendall(SB + body + EB)
            answer = b""
            while not answer.endswith(EB):
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed before the ACK")
                answer += chunk
        segments = answer.strip(SB + EB).split(b"\r")
        separator = segments[0][3:4]  # the ACK answers in the received message's delimiters
        msa = next(s for s in segments if s.startswith(b"MSA"))
        code = msa.split(separator)[1].decode()
        if code in ("AA", "CA"):
            self.tally.ack(control_id, unit.duplicate)
            return None
        if code in ("AR", "CR"):
            self.tally.refused(f"mllp {code}")
            return 1.0
        self.tally.rejected.append(f"{control_id}: MLLP {code}")
        return None


def memory_and_cpu(pids: dict[str, int]) -> dict[str, dict[str, float]]:
    report: dict[str, dict[str, float]] = {}
    for role, pid in pids.items():
        try:
            report[role] = {"peak_rss_mib": round(peak_rss_mib(pid), 1), "cpu_s": round(cpu_seconds(pid), 1)}
        except OSError:
            continue  # restarted a moment ago
    return report


VICTIMS = ("gateway", "lake-writer", "er7-staging", "mllp")


def chaos(
    up_pid: int, stop: threading.Event, every: float, victims: list[str], kills: int, log: list[str]
) -> None:
    turn = 0
    while len(log) < kills and not stop.wait(every):
        role = victims[turn % len(victims)]
        turn += 1
        pid = children_of(up_pid).get(role)
        if pid is None:
            continue
        os.kill(pid, signal.SIGKILL)
        log.append(f"{time.strftime('%H:%M:%S')} kill -9 {role} pid={pid}")


def catalog_items(ddb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": table,
        "ProjectionExpression": "id, controlId, #s, #r",
        "ExpressionAttributeNames": {"#s": "status", "#r": "raw"},
    }
    while True:
        page = ddb.scan(**kwargs)
        items.extend({k: next(iter(v.values())) for k, v in item.items()} for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def raw_keys(s3: Any, bucket: str) -> set[str]:
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="raw/"):
        keys.update(o["Key"] for o in page.get("Contents", []))
    return keys


def verify(aws: dict[str, Any], acked: set[str], run_prefix: str) -> dict[str, Any]:
    items = [
        i
        for i in catalog_items(aws["ddb"], "hl7lake-catalog")
        if i.get("controlId", "").startswith(run_prefix)
    ]
    per_control = Counter(i["controlId"] for i in items)
    keys = raw_keys(aws["s3"], "hl7lake-lake")
    statuses = Counter(i.get("status") for i in items)
    return {
        "catalog_entries": len(items),
        "statuses": dict(statuses),
        "lost": sorted(acked - set(per_control)),
        "doubled": sorted(c for c, n in per_control.items() if n > 1),
        "stuck": sorted(i["controlId"] for i in items if i.get("status") not in ("parsed", "failed")),
        "no_raw_object": sorted(
            i["controlId"] for i in items if not i.get("raw") or i["raw"].split("/", 3)[3] not in keys
        ),
    }


def soak(stack: Stack, args: argparse.Namespace, units: list[Unit]) -> dict[str, Any]:
    """Sends every unit, waits for the hub to drain, then checks the lake against what was acknowledged."""
    up = stack.process
    run_prefix = units[0].messages[0][0][:9]
    token = stack.token(f"sender@{SOURCE}.example")
    aws = {
        name: stack.client(service) for name, service in (("ddb", "dynamodb"), ("s3", "s3"), ("sqs", "sqs"))
    }
    tally, kills = Tally(), []
    stop_chaos = threading.Event()
    if args.chaos:
        threading.Thread(
            target=chaos,
            args=(up.pid, stop_chaos, args.chaos_every, args.victims.split(","), args.kills, kills),
            daemon=True,
        ).start()
    queue: list[Unit] = list(reversed(units))
    queue_lock = threading.Lock()
    peak_depth = 0

    def sender_loop() -> None:
        sender = Sender(
            stack.url, stack.mllp_port, token, tally, deadline_s=300, alive=lambda: up.poll() is None
        )
        while up.poll() is None:
            with queue_lock:
                if not queue:
                    return
                unit = queue.pop()
            sender.send(unit)

    started = time.monotonic()
    threads = [threading.Thread(target=sender_loop) for _ in range(args.senders)]
    for thread in threads:
        thread.start()
    try:
        while any(t.is_alive() for t in threads):
            time.sleep(2)
            peak_depth = max(peak_depth, max(queue_depths(aws["sqs"], "hl7lake-").values(), default=0))
            done = args.messages - sum(len(u.messages) for u in queue if not u.duplicate)
            elapsed = time.monotonic() - started
            print(f"  {elapsed:6.0f}s sent {done}/{args.messages} acked {len(tally.acked)}", file=sys.stderr)
    finally:
        stop_chaos.set()
    sent_in = time.monotonic() - started
    if up.poll() is not None:
        raise SystemExit(
            f"hl7lake up stopped during the load (exit {up.returncode}); logs in {stack.run_dir}"
        )
    try:
        drained_in = wait_drained(aws["sqs"], "hl7lake-", args.drain_timeout, interval=1) - started
    except TimeoutError:
        drained_in = time.monotonic() - started
    outcome = verify(aws, tally.acked, run_prefix)
    depths = queue_depths(aws["sqs"], "hl7lake-")
    return dict(
        acknowledged=len(tally.acked),
        duplicates_answered=tally.duplicates_answered,
        refusals=dict(tally.refusals),
        rejected=tally.rejected[:20],
        unacknowledged=len(tally.unacknowledged),
        send_seconds=round(sent_in, 1),
        accepted_per_second=round(len(tally.acked) / sent_in, 1),
        drain_seconds=round(drained_in - sent_in, 1),
        end_to_end_per_second=round(len(tally.acked) / drained_in, 1),
        peak_queue_depth=peak_depth,
        dead_letters={k: v for k, v in depths.items() if k.endswith("-dlq")},
        processes=memory_and_cpu({"up": up.pid, **stack.processes()}),
        kills=kills,
        **{k: v if isinstance(v, int | dict) else len(v) for k, v in outcome.items()},
        examples={k: v[:5] for k, v in outcome.items() if isinstance(v, list) and v},
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--duplicates", type=float, default=0.1)
    parser.add_argument("--chaos", action="store_true", help="kill -9 a service every --chaos-every s")
    parser.add_argument("--chaos-every", type=float, default=20.0)
    parser.add_argument("--kills", type=int, default=1_000_000, help="at most this many kills")
    parser.add_argument(
        "--victims", default=",".join(VICTIMS), help=f"comma-separated, of {', '.join(VICTIMS)}"
    )
    parser.add_argument("--drain-timeout", type=float, default=1800.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="write the report here too")
    parser.add_argument("--keep-logs", action="store_true", help="keep the stack's folder (logs, state)")
    args = parser.parse_args()

    units = plan(args.messages, args.duplicates, args.seed)
    report: dict[str, Any] = {"messages": args.messages, "senders": args.senders, "chaos": args.chaos}
    with running_stack(keep_logs=args.keep_logs) as stack:
        report.update(soak(stack, args, units))
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    bad = (
        report.get("lost", 1)
        or report.get("doubled", 1)
        or report.get("stuck", 1)
        or report.get("no_raw_object", 1)
    )
    return 1 if bad or report.get("rejected") or report.get("unacknowledged") else 0


def print_report(r: dict[str, Any]) -> None:
    print(f"\nsoak: {r['messages']} messages, {r['senders']} senders, chaos={'on' if r['chaos'] else 'off'}")
    for key in ("acknowledged", "duplicates_answered", "catalog_entries", "statuses", "lost", "doubled",
                "stuck", "no_raw_object", "unacknowledged", "rejected", "dead_letters", "refusals",
                "send_seconds", "accepted_per_second", "drain_seconds", "end_to_end_per_second",
                "peak_queue_depth"):  # fmt: skip
        if key in r:
            print(f"  {key:22s} {r[key]}")
    for role, figures in sorted(r.get("processes", {}).items()):
        rss, cpu = figures["peak_rss_mib"], figures["cpu_s"]
        print(f"  process {role:14s} peak RSS {rss:7.1f} MiB   CPU {cpu:7.1f} s")
    for line in r.get("kills", []):
        print(f"  {line}")
    if r.get("examples"):
        print(f"  examples {r['examples']}")


if __name__ == "__main__":
    raise SystemExit(main())
