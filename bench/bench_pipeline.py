"""The pipeline benchmark (`make bench`): `hl7lake up` on free ports, measured from one run.

    python bench/bench_pipeline.py [--messages 600] [--senders 4] [--latency-seconds 20] [--json FILE]

1. ceiling  — the emulator's bare hub shape in the same run: Publish → two raw-delivery queues,
              drained in batches of 10 with delete. The pipeline cannot be faster than this.
2. sustained — 4 senders post corpus messages (each with its own MSH-10) as fast as they are
              answered; msg/s from the first POST until the hub's queues are empty; AWS calls per
              message by service and operation (counted in our processes by botocore's
              before-call event, HL7LAKE_CALL_COUNTS_DIR), CPU ms per message of every process
              including the emulator, and what those calls would cost on AWS at list prices.
3. latency  — an open-loop sender at 25% and 75% of the sustained rate; POST → catalog `parsed`
              (the catalog item's updatedAt) p50 / p95 / p99.
4. batch    — one body of --batch-messages messages: time to the answer.

Prints a table and writes JSON (default .run/bench.json). Numbers, never pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from stack import Stack, cpu_by_role, peak_rss_mib, running_stack, wait_drained

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "hl7-corpus" / "messages"

# AWS list prices, us-east-1, on-demand, as published in November 2026 (USD). Storage, data transfer,
# Cognito (per monthly active user) and compute are not counted: these are the per-request prices.
PRICE_PER_MILLION = {
    "sns": 0.50,  # Publish / PublishBatch requests (64 KB chunks); delivery to SQS is free
    "sqs": 0.40,  # standard queue requests (a batch of 10 is one request)
    "dynamodb.write": 0.625,  # on-demand write request units (items under 1 KB: one each)
    "dynamodb.read": 0.125,  # on-demand read request units
    "s3.write": 5.00,  # PUT, COPY, POST, LIST ($0.005 per 1,000)
    "s3.read": 0.40,  # GET and others ($0.0004 per 1,000)
}
DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
FREE = {"DescribeTable", "GetTopicAttributes", "GetQueueUrl", "ListTopics", "DescribeUserPool"}


def corpus() -> list[bytes]:
    skip = ("BATCH", "BAD", "NOTYPE", "EMPTY")
    return [p.read_bytes() for p in sorted(CORPUS.glob("*.hl7")) if not any(t in p.name for t in skip)]


def unique(body: bytes, n: int) -> bytes:
    # MSH-10 is the 10th field; rewrite it so every message is new to the dedup store.
    body = body.removeprefix(b"\xef\xbb\xbf")
    first, sep, rest = body.partition(b"\r") if b"\r" in body[:2000] else body.partition(b"\n")
    fs = first[3:4]
    fields = first.split(fs)
    if len(fields) > 9:
        fields[9] = b"BENCH%08d" % n
    return fs.join(fields) + sep + rest


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else float("nan")


# --- 1. the bare hub ceiling ---------------------------------------------------------------------


def bare_hub_ceiling(stack: Stack, count: int, publishers: int = 4) -> float:
    """msg/s of Publish → two raw-delivery queues drained by receive(10) + delete batch."""
    sns, sqs = stack.client("sns"), stack.client("sqs")
    name = f"bare-{uuid.uuid4().hex[:8]}"
    topic = sns.create_topic(Name=name)["TopicArn"]
    urls = [sqs.create_queue(QueueName=f"{name}-{i}")["QueueUrl"] for i in (1, 2)]
    for url in urls:
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    body = json.dumps({"payload": "x" * 2000})
    attributes = {k: {"DataType": "String", "StringValue": k} for k in ("event", "format", "source")}

    def publish(share: int) -> None:
        for _ in range(share):
            sns.publish(TopicArn=topic, Message=body, MessageAttributes=attributes)

    def drain(url: str) -> None:
        got = 0
        while got < count:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            )
            if messages:
                entries = [
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
                ]
                sqs.delete_message_batch(QueueUrl=url, Entries=entries)
                got += len(messages)

    started = time.monotonic()
    with ThreadPoolExecutor(publishers + len(urls)) as pool:
        drains = [pool.submit(drain, url) for url in urls]
        for _ in range(publishers):
            pool.submit(publish, count // publishers)
        for future in drains:
            future.result()
    elapsed = time.monotonic() - started
    sns.delete_topic(TopicArn=topic)
    for url in urls:
        sqs.delete_queue(QueueUrl=url)
    return (count // publishers * publishers) / elapsed


# --- 2. sustained -------------------------------------------------------------------------------


def call_counts(directory: Path) -> Counter[str]:
    total: Counter[str] = Counter()
    for file in directory.glob("*.json"):
        try:
            total.update(json.loads(file.read_text()))
        except (OSError, ValueError):
            continue  # being replaced right now: the next read has it
    return total


def usd_per_million(calls_per_message: dict[str, float]) -> float:
    usd = 0.0
    for name, per_message in calls_per_message.items():
        service, operation = name.split(".", 1)
        if operation in FREE:
            continue
        if service == "dynamodb":
            key = "dynamodb.write" if operation in DYNAMODB_WRITES else "dynamodb.read"
        elif service == "s3":
            key = "s3.write" if operation.startswith(("Put", "Copy", "List", "Post")) else "s3.read"
        else:
            key = service
        usd += per_message * PRICE_PER_MILLION.get(key, 0.0)
    return usd


class Senders:
    def __init__(self, stack: Stack, token: str) -> None:
        self.client = httpx.Client(base_url=stack.url, timeout=60, limits=httpx.Limits(max_connections=32))
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/hl7-v2"}
        self.bodies = corpus()
        self.next = 0
        self.lock = threading.Lock()

    def body(self) -> bytes:
        with self.lock:
            n = self.next
            self.next += 1
        return unique(self.bodies[n % len(self.bodies)], n)

    def post(self, body: bytes) -> tuple[str, float, float]:
        """(id, time.time() of the first POST, seconds until it was accepted), retrying a 503 as a
        sender would."""
        first = time.time()
        while True:
            response = self.client.post("/v1/messages", content=body, headers=self.headers)
            if response.status_code == 503:
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            response.raise_for_status()
            return str(response.json()["id"]), first, time.time() - first


def sustained(
    stack: Stack, senders: Senders, count: int, concurrency: int, counts_dir: Path
) -> dict[str, Any]:
    pids = stack.processes()
    sqs = stack.client("sqs")
    wait_drained(sqs, "hl7lake-", 60)
    cpu_before, calls_before = cpu_by_role(pids), call_counts(counts_dir)
    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _: senders.post(senders.body()), range(count)))
    accepted_in = time.monotonic() - started
    drained_at = wait_drained(sqs, "hl7lake-", 600)
    elapsed = drained_at - started
    time.sleep(1.5)  # the processes flush their call counts every 0.5 s
    cpu_after, calls = cpu_by_role(pids), call_counts(counts_dir) - calls_before
    per_message = {k: v / count for k, v in sorted(calls.items())}
    cpu_ms = {
        role: (cpu_after[role] - cpu_before[role]) * 1000 / count for role in cpu_after if role in cpu_before
    }
    return {
        "messages": count,
        "accepted_per_second": count / accepted_in,
        "end_to_end_per_second": count / elapsed,
        "calls_per_message": per_message,
        "calls_per_message_total": sum(per_message.values()),
        "cpu_ms_per_message": cpu_ms,
        "usd_per_million_messages": usd_per_million(per_message),
    }


# --- 3. latency at a fixed rate -----------------------------------------------------------------


def parsed_at(stack: Stack, table: str, ids: list[str]) -> dict[str, float]:
    ddb = stack.client("dynamodb")
    found: dict[str, float] = {}
    for start in range(0, len(ids), 100):
        keys = [{"id": {"S": i}} for i in ids[start : start + 100]]
        request = {table: {"Keys": keys, "ProjectionExpression": "id, #s, updatedAt",
                           "ExpressionAttributeNames": {"#s": "status"}}}  # fmt: skip
        while request:
            response = ddb.batch_get_item(RequestItems=request)
            for item in response["Responses"].get(table, []):
                if item["status"]["S"] == "parsed":
                    stamp = item["updatedAt"]["S"].replace("Z", "+00:00")
                    found[item["id"]["S"]] = datetime.fromisoformat(stamp).timestamp()
            request = response.get("UnprocessedKeys") or {}
    return found


def latency_at(
    stack: Stack, senders: Senders, rate: float, seconds: float, until_drained: bool = True
) -> dict[str, float]:
    count = max(1, int(rate * seconds))
    sent: dict[str, float] = {}
    accept: list[float] = []
    with ThreadPoolExecutor(16) as pool:
        started = time.monotonic()
        futures = []
        for n in range(count):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(senders.post, senders.body()))
        for future in futures:
            message_id, at, took = future.result()
            sent[message_id] = at
            accept.append(took)
    result = {
        "rate": rate,
        "messages": count,
        "accept_p50_ms": pct(accept, 0.50),
        "accept_p99_ms": pct(accept, 0.99),
    }
    if not until_drained:
        return result
    wait_drained(stack.client("sqs"), "hl7lake-", 600)
    done = parsed_at(stack, "hl7lake-catalog", list(sent))
    latencies = [done[i] - sent[i] for i in sent if i in done]
    return {
        **result,
        "parsed": len(latencies),
        "p50_ms": pct(latencies, 0.50),
        "p95_ms": pct(latencies, 0.95),
        "p99_ms": pct(latencies, 0.99),
    }


# --- 4. one large batch body ------------------------------------------------------------------------


def batch_body(
    stack: Stack, senders: Senders, count: int, probe_rate: float, probe_seconds: float, wait: bool
) -> dict[str, Any]:
    """One body of `count` messages: seconds to the answer; single messages sent meanwhile (their accept
    latency, against the same rate without the batch); seconds until every message was split."""
    standard = [b for b in senders.bodies if b.startswith(b"MSH|^~\\&|")]
    parts = []
    for n in range(count):
        body = unique(standard[n % len(standard)], 50_000_000 + n)
        parts.append(body if body.endswith((b"\r", b"\n")) else body + b"\r")
    started = time.monotonic()
    response = senders.client.post("/v1/messages", content=b"".join(parts), headers=senders.headers)
    answered = time.monotonic() - started
    result: dict[str, Any] = {"messages": count, "status": response.status_code, "answer_seconds": answered}
    if response.status_code >= 300:
        return result
    location = response.json()["batch"].get("location")
    result["during"] = latency_at(stack, senders, probe_rate, probe_seconds, until_drained=False)
    while location and wait:
        report = senders.client.get(location, headers=senders.headers)
        if report.status_code == 200 and report.json()["batch"]["status"] == "completed":
            result["accepted"] = report.json()["batch"]["accepted"]
            break
        if time.monotonic() - started > 3600:
            break
        time.sleep(1)
    if wait:
        result["split_seconds"] = time.monotonic() - started
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--ceiling-messages", type=int, default=1000)
    parser.add_argument("--latency-seconds", type=float, default=20)
    parser.add_argument("--batch-messages", type=int, default=10_000)
    parser.add_argument("--wait-batch", action="store_true", help="also wait until the batch is split")
    parser.add_argument("--json", type=Path, default=ROOT / ".run" / "bench.json")
    args = parser.parse_args()
    counts_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"hl7lake-calls-{uuid.uuid4().hex[:8]}"
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count()}
    with running_stack(HL7LAKE_CALL_COUNTS_DIR=str(counts_dir)) as stack:
        senders = Senders(stack, stack.token())
        report["ceiling_per_second"] = bare_hub_ceiling(stack, args.ceiling_messages)
        report["sustained"] = sustained(stack, senders, args.messages, args.senders, counts_dir)
        rate = report["sustained"]["end_to_end_per_second"]
        report["latency"] = [
            latency_at(stack, senders, rate * share, args.latency_seconds) for share in (0.25, 0.75)
        ]
        quiet = report["latency"][0]
        report["batch"] = batch_body(
            stack, senders, args.batch_messages, quiet["rate"], args.latency_seconds, args.wait_batch
        )
        wait_drained(stack.client("sqs"), "hl7lake-", 600)
        report["peak_rss_mib"] = {role: peak_rss_mib(pid) for role, pid in stack.processes().items()}
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"\nJSON: {args.json}")
    return 0


def print_report(r: dict[str, Any]) -> None:
    s = r["sustained"]
    ceiling = r["ceiling_per_second"]
    e2e = s["end_to_end_per_second"]
    print(f"\nhl7lake pipeline benchmark — {r['date']}, {r['cores']} cores, embedded emulator")
    print(f"  end to end (sustained, {s['messages']} messages)  {e2e:7.1f} msg/s")
    print(f"  accepted (POST → 202)                  {s['accepted_per_second']:7.1f} msg/s")
    print(f"  emulator bare hub ceiling              {ceiling:7.1f} msg/s   ratio {e2e / ceiling:5.0%}")
    for lat in r["latency"]:
        print(f"  POST → parsed at {lat['rate']:5.1f} msg/s (open loop)   p50 {lat['p50_ms']:7.0f} ms   "
              f"p95 {lat['p95_ms']:7.0f} ms   p99 {lat['p99_ms']:7.0f} ms")  # fmt: skip
    b = r["batch"]
    answer = f"{b['answer_seconds']:.1f} s (HTTP {b['status']})"
    print(f"  batch body of {b['messages']} messages answered in {answer}", end="")
    if "split_seconds" in b:
        print(f", all {b.get('accepted', '?')} accepted and published in {b['split_seconds']:.0f} s")
    else:
        print(" (split afterwards by the batch splitter)")
    if "during" in b:
        quiet, during = r["latency"][0], b["during"]
        d50, d99, q50, q99 = (x[k] for x in (during, quiet) for k in ("accept_p50_ms", "accept_p99_ms"))
        print(f"    other senders meanwhile ({during['rate']:.1f} msg/s): accept p50 {d50:.0f} ms"
              f" p99 {d99:.0f} ms, against p50 {q50:.0f} ms p99 {q99:.0f} ms without it"
              f" ({d50 / q50:.1f}× at p50)")  # fmt: skip
    print(f"  AWS calls per message {s['calls_per_message_total']:5.2f}  (our processes, all operations):")
    by_service: dict[str, float] = defaultdict(float)
    for name, value in s["calls_per_message"].items():
        by_service[name.split(".")[0]] += value
        print(f"      {name:32s} {value:6.2f}")
    print("    by service: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(by_service.items())))
    print(
        "  CPU ms per message: "
        + ", ".join(f"{k} {v:.1f}" for k, v in sorted(s["cpu_ms_per_message"].items()))
    )
    ours = sum(v for k, v in s["cpu_ms_per_message"].items() if k != "emulator")
    print(f"    our processes together {ours:.1f} ms")
    # What the machine allows at all: every process's CPU per message spread over every core.
    everything = sum(s["cpu_ms_per_message"].values())
    bound = r["cores"] * 1000 / everything if everything else 0.0
    print(f"    all processes {everything:.1f} ms on {r['cores']} cores: at most {bound:.0f} msg/s here"
          f" ({bound / ceiling:.0%} of the ceiling)")  # fmt: skip
    print("  peak RSS MiB: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["peak_rss_mib"].items())))
    print(f"  estimated USD per million messages on AWS (request prices, {r['date'][:7]}): "
          f"${s['usd_per_million_messages']:.2f}")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
