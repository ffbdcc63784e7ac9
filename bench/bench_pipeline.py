"""End-to-end pipeline benchmark: starts `hl7lake up` on free ports, sends corpus messages, prints numbers.

    python bench/bench_pipeline.py [--messages 200] [--concurrency 4]

Each message is a corpus message with a unique control id (so none is a duplicate). Prints accept
latency (POST → 202), end-to-end latency (POST → catalog says parsed) and throughput.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from hl7lake.emulator import free_port

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "hl7-corpus" / "messages"


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
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency-samples", type=int, default=20)
    args = parser.parse_args()
    emulator_port, port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HL7LAKE_"))}
    run_dir = tempfile.mkdtemp()
    env.update(
        HL7LAKE_STATE_DIR=str(Path(run_dir) / "state"),
        HL7LAKE_EMULATOR_PORT=str(emulator_port),
        HL7LAKE_PORT=str(port),
        HL7LAKE_MLLP_PORT=str(free_port()),
        HL7LAKE_RUN_DIR=run_dir,
        HL7LAKE_LOG_LEVEL="WARNING",
        HL7LAKE_WAIT_SECONDS="1",
    )
    url = f"http://127.0.0.1:{port}"
    up = subprocess.Popen([sys.executable, "-m", "hl7lake", "up"], env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        token = subprocess.run(
            [sys.executable, "-m", "hl7lake", "token", "--user", "sender@hospital-a.example"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/hl7-v2"}
        bodies = corpus()
        messages = [unique(bodies[i % len(bodies)], i) for i in range(args.messages)]
        client = httpx.Client(
            base_url=url, timeout=60, limits=httpx.Limits(max_connections=args.concurrency * 2)
        )
        sent: dict[str, float] = {}
        accept: list[float] = []

        def send(body: bytes) -> None:
            started = time.monotonic()
            response = client.post("/v1/messages", content=body, headers=headers)
            response.raise_for_status()
            accept.append(time.monotonic() - started)
            sent[response.json()["id"]] = started

        started = time.monotonic()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(send, messages))
        accepted_in = time.monotonic() - started
        done: dict[str, float] = {}
        while len(done) < len(sent) and time.monotonic() - started < 600:
            page = client.get("/v1/messages?status=parsed&limit=100", headers=headers).json()
            cursor = page
            while True:
                for item in cursor["items"]:
                    done.setdefault(item["id"], time.monotonic())
                if not cursor["next"] or len(done) >= len(sent):
                    break
                cursor = client.get(
                    f"/v1/messages?status=parsed&limit=100&cursor={cursor['next']}", headers=headers
                ).json()
            time.sleep(0.5)
        total = time.monotonic() - started
        e2e = [done[i] - sent[i] for i in sent if i in done]
        print(f"messages: {len(messages)}  concurrency: {args.concurrency}  parsed: {len(e2e)}")
        print(
            f"accept   : {len(messages) / accepted_in:7.1f} msg/s   p50 {pct(accept, 0.5):6.1f} ms   "
            f"p95 {pct(accept, 0.95):6.1f} ms"
        )
        print(
            f"end-to-end: {len(e2e) / total:7.1f} msg/s   "
            f"p50 {pct(e2e, 0.5):6.1f} ms   p95 {pct(e2e, 0.95):6.1f} ms "
            f"(POST → catalog 'parsed', observed by polling the list API)"
        )
        # Unloaded latency: one message at a time, each followed until the catalog says parsed.
        single: list[float] = []
        for n in range(args.latency_samples):
            body = unique(bodies[n % len(bodies)], 10_000_000 + n)
            t0 = time.monotonic()
            mid = client.post("/v1/messages", content=body, headers=headers).json()["id"]
            while client.get(f"/v1/messages/{mid}", headers=headers).json().get("status") != "parsed":
                if time.monotonic() - t0 > 60:
                    raise TimeoutError(mid)
                time.sleep(0.005)
            single.append(time.monotonic() - t0)
        print(
            f"unloaded  : one at a time, POST → parsed   p50 {pct(single, 0.5):6.1f} ms   "
            f"p95 {pct(single, 0.95):6.1f} ms   ({len(single)} messages)"
        )
        return 0 if len(e2e) == len(messages) else 1
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)


if __name__ == "__main__":
    raise SystemExit(main())
