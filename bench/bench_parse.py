"""Benchmark the ER7 parser against hl7apy, python-hl7 and a bare str.split floor.

    python bench/bench_parse.py [--corpus PATH] [--seconds N]

Every parseable corpus message (batches split first, malformed files left out) is parsed by
each contender in the same run; throughput is messages/s and MB/s of UTF-8 text.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.er7 import Delimiters, Er7Error, decode, normalize, read_header, split_batch  # noqa: E402
from workers.er7_staging.document import parse_document  # noqa: E402

COMPARED = (("MSH", 9), ("MSH", 10), ("PID", 3), ("PID", 5))


@dataclass
class Sample:
    name: str
    text: str
    delimiters: Delimiters
    size: int  # UTF-8 bytes


@dataclass
class Result:
    name: str
    readable: int
    messages: int
    seconds: float
    size: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def mb_rate(self) -> float:
        return self.size / self.seconds / 1e6 if self.seconds else 0.0


def load(corpus: Path) -> list[Sample]:
    samples = []
    for path in sorted((corpus / "messages").glob("*.hl7")):
        if any(mark in path.name for mark in ("BAD_", "NOMSH", "EMPTY")):
            continue
        try:
            messages = split_batch(normalize(decode(path.read_bytes()))).messages
        except Er7Error:
            continue
        for i, text in enumerate(messages, 1):
            try:
                parse_document(text)
            except Er7Error:
                continue  # e.g. 047/048 (no MSH-9) or 054's second message (bad MSH-2)
            samples.append(
                Sample(f"{path.name[:3]}#{i}", text, read_header(text).delimiters, len(text.encode()))
            )
    return samples


def floor(sample: Sample) -> object:
    d = sample.delimiters
    return [[f.split(d.component) for f in seg.split(d.field)] for seg in sample.text.split("\r")]


def ours(sample: Sample) -> object:
    return parse_document(sample.text)


def python_hl7() -> Callable[[Sample], object] | None:
    try:
        import hl7
    except ImportError:
        return None
    return lambda sample: hl7.parse(sample.text)


def hl7apy() -> Callable[[Sample], object] | None:
    try:
        from hl7apy.parser import parse_message
    except ImportError:
        return None
    return lambda sample: parse_message(sample.text, find_groups=False)


def run(
    name: str, fn: Callable[[Sample], object], samples: list[Sample], seconds: float, max_passes: int
) -> Result:
    readable = []
    for sample in samples:
        try:
            fn(sample)
        except Exception:  # a contender failing on a message is a result, not a crash
            continue
        readable.append(sample)
    count = size = passes = 0
    started = time.perf_counter()
    while readable and passes < max_passes:
        for sample in readable:
            fn(sample)
        count += len(readable)
        size += sum(s.size for s in readable)
        passes += 1
        if time.perf_counter() - started >= seconds:
            break
    return Result(name, len(readable), count, time.perf_counter() - started, size)


def peak_memory(samples: list[Sample]) -> tuple[Sample, int]:
    largest = max(samples, key=lambda s: s.size)
    parse_document(largest.text)  # warm caches so they are not counted
    tracemalloc.start()
    parse_document(largest.text)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return largest, peak


# -- agreement with python-hl7 ------------------------------------------------------------------


def our_leaves(doc: dict[str, Any], seg_id: str, fno: int) -> dict[str, str]:
    segment = next((s for s in doc["segments"] if s["id"] == seg_id), None)
    if segment is None:
        return {}
    prefix = str(fno)
    return {k: v for k, v in segment["fields"].items() if k.split(".")[0].split("[")[0] == prefix}


def hl7_leaves(message: Any, seg_id: str, fno: int) -> dict[str, str]:
    """python-hl7's nested field flattened to this project's keys, values unescaped."""
    try:
        field = message.segment(seg_id)[fno]
    except (KeyError, IndexError):
        return {}
    out: dict[str, str] = {}
    reps = [field] if isinstance(field, str) else list(field)
    for r, rep in enumerate(reps, 1):
        base = str(fno) if r == 1 else f"{fno}[{r}]"
        if isinstance(rep, str):
            if rep:
                out[base] = message.unescape(rep)
            continue
        for c, comp in enumerate(rep, 1):
            subs = [comp] if isinstance(comp, str) else list(comp)
            if len(subs) == 1:
                if subs[0]:
                    out[f"{base}.{c}"] = message.unescape(subs[0])
                continue
            for s, sub in enumerate(subs, 1):
                if sub:
                    out[f"{base}.{c}.{s}"] = message.unescape(sub)
    return out


def agreement(
    samples: list[Sample], others: dict[str, Callable[[Sample], object]]
) -> tuple[int, int, list[str]]:
    import hl7

    compared = mismatches = 0
    where: list[str] = []
    for sample in samples:
        try:
            for fn in others.values():
                fn(sample)
        except Exception:  # only messages every parser reads are compared
            continue
        doc = parse_document(sample.text)
        message = hl7.parse(sample.text)
        for seg_id, fno in COMPARED:
            mine, theirs = our_leaves(doc, seg_id, fno), hl7_leaves(message, seg_id, fno)
            if not mine and not theirs:
                continue  # no PID in this message
            compared += 1
            if mine != theirs:
                mismatches += 1
                where.append(f"{sample.name} {seg_id}-{fno}")
    return compared, mismatches, where


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / ".." / "shared" / "hl7-corpus")
    parser.add_argument("--seconds", type=float, default=2.0, help="time budget per contender")
    args = parser.parse_args(argv)
    if not (args.corpus / "messages").is_dir():
        print(f"corpus not found: {args.corpus}", file=sys.stderr)
        return 2
    samples = load(args.corpus)
    total = sum(s.size for s in samples)
    print(f"{len(samples)} messages, {total / 1024:.1f} KiB, from {args.corpus.resolve()}\n")

    contenders: dict[str, Callable[[Sample], object]] = {
        "str.split floor": floor,
        "hl7lake parse_document": ours,
    }
    others = {
        name: fn
        for name, fn in (("python-hl7 hl7.parse", python_hl7()), ("hl7apy parse_message", hl7apy()))
        if fn
    }
    contenders |= others
    results = []
    for name, fn in contenders.items():
        # hl7apy takes tens of ms per message: one or two passes are plenty
        max_passes = 2 if name.startswith("hl7apy") else 1_000_000
        results.append(run(name, fn, samples, args.seconds, max_passes))

    mine = next(r for r in results if r.name.startswith("hl7lake"))
    print(f"{'parser':<24} {'read':>7} {'msg/s':>10} {'MB/s':>8} {'µs/msg':>9} {'ours is':>14}")
    for r in results:
        if r is mine:
            versus = "-"
        elif r.rate > mine.rate:
            versus = f"{r.rate / mine.rate:.2f}x slower"
        else:
            versus = f"{mine.rate / r.rate:.1f}x faster"
        print(
            f"{r.name:<24} {r.readable:>3}/{len(samples):<3} {r.rate:>10.0f} {r.mb_rate:>8.2f} "
            f"{1e6 / r.rate if r.rate else 0:>9.1f} {versus:>14}"
        )

    largest, peak = peak_memory(samples)
    print(
        f"\npeak memory parsing the largest message ({largest.name}, {largest.size} B): {peak / 1024:.1f} KiB"
    )
    if "python-hl7 hl7.parse" in others:
        compared, mismatches, where = agreement(samples, others)
        fields = ", ".join(f"{seg}-{fno}" for seg, fno in COMPARED)
        print(f"field agreement with python-hl7 ({fields}): {compared} compared, {mismatches} mismatches")
        for item in where[:10]:
            print(f"  mismatch: {item}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
