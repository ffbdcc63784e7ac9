"""Requests/s of the front door alone: POST /v1/messages on one core, real RS256 token checks.

    python bench/bench_gateway.py [--seconds 5] [--connections 16] [--baseline-ref REF]

The gateway runs under uvicorn in a subprocess pinned to one CPU, with the in-memory hub, dedup
store and lake reader, and a TokenVerifier that checks every token against a JWKS file (the keys
and tokens of tests/tokens.py). This process, pinned to another CPU, drives it with a small
keep-alive HTTP/1.1 client on asyncio sockets; every request is a new message (MSH-10 counts up)
so each one is accepted and published (202).

Variants, each on a fresh server: the code at --baseline-ref (when given, extracted with
`git archive`), then the current code without and with the verified-token cache, then with
uvicorn[standard]'s httptools + uvloop (when installed). Printed per variant: req/s, latency
p50/p99, the server's CPU ms per request, and the client's CPU use (it must stay well under 100%
for the numbers to be the server's).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import io
import itertools
import json
import logging
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MESSAGE = (
    "MSH|^~\\&|ADT1|HOSP_A|LAKE|AWS|20260101120000||ADT^A01^ADT_A01|BENCH-{n:012d}|P|2.5.1|||AL|NE\r"
    "EVN|A01|20260101120000|||USER01^SMITH^ANNA\r"
    "PID|1||MRN{n:08d}^^^HOSP_A^MR||DOE^JOHN^Q||19700101|M|||1 MAIN ST^^SPRINGFIELD^IL^62701^USA||"
    "(555)555-0100|||S||ACCT{n:08d}\r"
    "NK1|1|DOE^JANE|SPO^Spouse^HL70063|1 MAIN ST^^SPRINGFIELD^IL^62701^USA|(555)555-0101\r"
    "PV1|1|I|WARD1^101^A^HOSP_A||||1234^WELBY^MARCUS^^^DR|||MED||||ADM|||1234^WELBY^MARCUS^^^DR|IP|"
    "VISIT{n:08d}|||||||||||||||||||||||||20260101120000\r"
    "AL1|1|DA|PENICILLIN||HIVES\r"
    "DG1|1|I10|J18.9^Pneumonia, unspecified organism^I10|||A\r"
)


@dataclass(frozen=True)
class Variant:
    name: str
    code_root: Path
    token_cache: bool
    loop: str
    http: str


@dataclass
class Window:
    """What the client saw between the end of the warm-up and the end of the run."""

    started: float
    ended: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)


@dataclass(frozen=True)
class Result:
    variant: Variant
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu_seconds: float | None
    client_cpu_seconds: float
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def line(self) -> str:
        cpu = self.server_cpu_seconds
        per_request = f"{cpu / self.requests * 1000:7.2f}" if cpu and self.requests else "    n/a"
        per_cpu_second = f"{self.requests / cpu:7.0f}" if cpu else "    n/a"
        others = sum(n for status, n in self.statuses.items() if status != 202)
        return (
            f"{self.variant.name:<44} {self.rate:7.0f} {self.p50_ms:7.1f} {self.p99_ms:7.1f} "
            f"{per_request} {per_cpu_second} {self.client_cpu_seconds / self.seconds:6.0%} {others:7d}"
        )


HEADER = (
    f"{'variant':<44} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms':>7} {'req/CPU':>7} "
    f"{'client':>6} {'non-202':>7}\n{'':<44} {'':>7} {'':>7} {'':>7} {'per req':>7} {'second':>7} "
    f"{'CPU':>6}"
)


# --- the server (a subprocess) ------------------------------------------------------------------


def _fakes() -> tuple[Any, Any, Any]:
    """The in-memory dedup store, lake reader and hub of the code under test: in tests/fakes, or in the
    production packages at a --baseline-ref older than their move."""
    try:
        from tests.fakes.dedup import MemoryDedupStore
        from tests.fakes.hub import MemoryHub
        from tests.fakes.lake_reader import MemoryLakeReader
    except ImportError:
        old = {
            "gateway.dedup": "MemoryDedupStore",
            "gateway.lake_reader": "MemoryLakeReader",
            "hub.memory": "MemoryHub",
        }
        return tuple(getattr(importlib.import_module(module), name) for module, name in old.items())
    return MemoryDedupStore, MemoryLakeReader, MemoryHub


def serve(args: argparse.Namespace) -> None:
    """Run the gateway with in-memory fakes on this process's CPU until terminated."""
    sys.path.insert(0, args.code_root)
    import httpx
    import uvicorn

    from gateway.app import create_app
    from gateway.auth import Jwks, TokenVerifier
    from gateway.config import GatewaySettings
    from gateway.ingest import IngestService
    from gateway.services import GatewayServices
    from tests.tokens import CLIENT_ID, ISSUER

    MemoryDedupStore, MemoryLakeReader, MemoryHub = _fakes()

    logging.basicConfig(  # as hl7lake.logs.configure: one INFO line per accepted message
        level=logging.INFO, filename=args.log_file, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    jwks_body = Path(args.jwks).read_bytes()
    jwks = Jwks(
        "https://idp.bench/jwks.json",
        http=httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200, content=jwks_body))),
    )
    options = {}
    if not args.token_cache and "cache_size" in inspect.signature(TokenVerifier).parameters:
        options["cache_size"] = 0
    services = GatewayServices(
        settings=GatewaySettings(),
        verifier=TokenVerifier(jwks, ISSUER, CLIENT_ID, **options),
        ingest=IngestService(MemoryDedupStore(), MemoryHub()),
        reader=MemoryLakeReader(),
    )
    uvicorn.run(
        create_app(services),
        host="127.0.0.1",
        port=args.port,
        loop=args.loop,
        http=args.http,
        log_level="warning",
        access_log=False,
    )


def start_server(
    variant: Variant, port: int, jwks: Path, log_file: Path, cpu: int
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve",
        f"--port={port}",
        f"--jwks={jwks}",
        f"--log-file={log_file}",
        f"--code-root={variant.code_root}",
        f"--loop={variant.loop}",
        f"--http={variant.http}",
        f"--token-cache={'on' if variant.token_cache else 'off'}",
    ]
    return subprocess.Popen(command, cwd=ROOT, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))


def wait_until_up(port: int, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the gateway exited with status {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                if conn.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the gateway did not answer /healthz in time")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the client (this process) ------------------------------------------------------------------


def request_bytes(token: str, n: int) -> bytes:
    body = MESSAGE.format(n=n).encode()
    head = (
        "POST /v1/messages HTTP/1.1\r\nHost: bench\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/hl7-v2\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


async def one_connection(
    port: int, tokens: list[str], counter: itertools.count[int], window: Window, stop_at: float
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (now := time.perf_counter()) < stop_at:
            n = next(counter)
            writer.write(request_bytes(tokens[n % len(tokens)], n))
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(content_length(head))
            if now >= window.started:
                window.latencies.append(time.perf_counter() - now)
                window.statuses[int(head[9:12])] += 1
    finally:
        writer.close()


async def drive(port: int, tokens: list[str], connections: int, warmup: float, seconds: float) -> Window:
    started = time.perf_counter()
    window = Window(started=started + warmup, ended=started + warmup + seconds)
    counter = itertools.count(int(time.time() * 1000) % 10**9 * 1000)  # new messages on every run
    await asyncio.gather(
        *(one_connection(port, tokens, counter, window, window.ended) for _ in range(connections))
    )
    return window


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


@dataclass(frozen=True)
class Load:
    window: Window
    seconds: float
    server_cpu_seconds: float | None
    client_cpu_seconds: float


async def load(pid: int, port: int, tokens: list[str], args: argparse.Namespace) -> Load:
    driving = asyncio.ensure_future(drive(port, tokens, args.connections, args.warmup, args.seconds))
    await asyncio.sleep(args.warmup)
    server_before, client_before = cpu_seconds(pid), time.process_time()
    window = await driving
    seconds = time.perf_counter() - window.started
    server_after, client_after = cpu_seconds(pid), time.process_time()
    server_used = None if server_before is None or server_after is None else server_after - server_before
    return Load(window, seconds, server_used, client_after - client_before)


def measure(variant: Variant, args: argparse.Namespace, workdir: Path, tokens: list[str]) -> Result:
    port = free_port()
    server = start_server(variant, port, workdir / "jwks.json", workdir / "gateway.log", args.cpus[0])
    try:
        wait_until_up(port, server)
        run = asyncio.run(load(server.pid, port, tokens, args))
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies = run.window.latencies
    return Result(
        variant=variant,
        requests=len(latencies),
        seconds=run.seconds,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        server_cpu_seconds=run.server_cpu_seconds,
        client_cpu_seconds=run.client_cpu_seconds,
        statuses=dict(run.window.statuses),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def extract(ref: str, destination: Path) -> Path:
    """The gateway and hub packages as they were at `ref` (read from git, the checkout is untouched)."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "gateway", "hub"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")
    return destination


def has_standard_extras() -> bool:
    try:
        import httptools  # noqa: F401
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def variants(args: argparse.Namespace, workdir: Path) -> list[Variant]:
    chosen = []
    if args.baseline_ref:
        old = extract(args.baseline_ref, workdir / "baseline")
        chosen.append(Variant(f"baseline ({args.baseline_ref}), h11 + asyncio", old, False, "asyncio", "h11"))
    chosen.append(Variant("no token cache, h11 + asyncio", ROOT, False, "asyncio", "h11"))
    chosen.append(Variant("token cache, h11 + asyncio", ROOT, True, "asyncio", "h11"))
    if has_standard_extras():
        chosen.append(Variant("token cache, httptools + uvloop", ROOT, True, "uvloop", "httptools"))
    else:
        print("note: uvicorn[standard] (httptools, uvloop) not installed: that variant is skipped")
    return chosen


def choose_cpus() -> tuple[int, int]:
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        print("note: one CPU only: server and client share it, so req/s understates the server")
        return available[0], available[0]
    return available[0], available[1]


def write_tokens_and_jwks(workdir: Path, count: int) -> list[str]:
    from tests.tokens import TokenFactory

    factory = TokenFactory()
    keys = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in factory.public_jwk.items()}
    (workdir / "jwks.json").write_text(json.dumps({"keys": [keys]}))
    return [factory.token(sub=f"sender-{i}") for i in range(count)]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per variant")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--tokens", type=int, default=4, help="distinct senders' tokens, used in turn")
    parser.add_argument("--baseline-ref", help="also measure the gateway as it was at this git ref")
    parser.add_argument("--repeat", type=int, default=1, help="runs of every variant")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--jwks", help=argparse.SUPPRESS)
    parser.add_argument("--log-file", help=argparse.SUPPRESS)
    parser.add_argument("--code-root", default=str(ROOT), help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--http", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--token-cache", choices=("on", "off"), default="on", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.token_cache = args.token_cache == "on"
    return args


def main() -> None:
    args = parse_args()
    if args.serve:
        serve(args)
        return
    args.cpus = choose_cpus()
    os.sched_setaffinity(0, {args.cpus[1]})
    print(
        f"POST /v1/messages, server on CPU {args.cpus[0]}, client on CPU {args.cpus[1]}, "
        f"{args.connections} connections, {args.seconds:g} s per run after {args.warmup:g} s warm-up"
    )
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        workdir = Path(tmp)
        tokens = write_tokens_and_jwks(workdir, args.tokens)
        chosen = variants(args, workdir)
        print(HEADER)
        for _ in range(args.repeat):
            for variant in chosen:
                print(measure(variant, args, workdir, tokens).line(), flush=True)


if __name__ == "__main__":
    main()
