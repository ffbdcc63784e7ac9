"""SQS cost at queue depth on plain moto against our launcher (hl7lake.emulator_server).

    python bench/bench_emulator.py [--variant moto|patched|both] [--depths 10,500,2000] [--repeats 5]

For each depth: fill a fresh queue (subscribed raw to an SNS topic) with that many ~1 KB messages,
then time ReceiveMessage(10) (VisibilityTimeout 30, as the workers use), SendMessage, and SNS
Publish (moto delivers to the queue inside the Publish call). Prints the median and max in ms.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hl7lake.emulator import EMULATOR_ENV, free_port, stop_emulator, wait_http  # noqa: E402

BODY = "MSH|^~\\&|" + "X" * 1000


def start(variant: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    if variant == "moto":
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    else:
        command = [
            sys.executable,
            "-m",
            "hl7lake.emulator_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**EMULATOR_ENV, "PATH": ""}, cwd=ROOT
        )
    wait_http(f"http://127.0.0.1:{port}/moto-api/", timeout=30)
    return process


def timed(call: Callable[[], Any], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def fill(sqs: Any, url: str, count: int) -> None:
    for first in range(0, count, 10):
        entries = [{"Id": str(i), "MessageBody": BODY} for i in range(min(10, count - first))]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def measure_depth(endpoint: str, depth: int, repeats: int) -> dict[str, list[float]]:
    session = boto3.session.Session(
        aws_access_key_id=EMULATOR_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=EMULATOR_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    sqs = session.client("sqs", region_name="us-east-1", endpoint_url=endpoint)
    sns = session.client("sns", region_name="us-east-1", endpoint_url=endpoint)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = sns.create_topic(Name=name)["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    fill(sqs, url, depth)
    results = {
        "receive(10)": timed(
            lambda: sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30),
            repeats,
        ),
        "send": timed(lambda: sqs.send_message(QueueUrl=url, MessageBody=BODY), repeats),
        "publish→sqs": timed(lambda: sns.publish(TopicArn=topic, Message=BODY), repeats),
    }
    sqs.delete_queue(QueueUrl=url)
    sns.delete_topic(TopicArn=topic)
    return results


def run(variant: str, depths: list[int], repeats: int) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as temp:
        process = start(variant, port, Path(temp) / "emulator.log")
        try:
            for depth in depths:
                for call, times in measure_depth(f"http://127.0.0.1:{port}", depth, repeats).items():
                    print(
                        f"{variant:8} depth {depth:5}  {call:12} "
                        f"median {statistics.median(times):8.1f} ms  max {max(times):8.1f} ms",
                        flush=True,
                    )
        finally:
            stop_emulator(process, timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", choices=["moto", "patched", "both"], default="both")
    parser.add_argument("--depths", default="10,500,2000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    depths = [int(depth) for depth in args.depths.split(",")]
    for variant in ["moto", "patched"] if args.variant == "both" else [args.variant]:
        run(variant, depths, args.repeats)


if __name__ == "__main__":
    main()
