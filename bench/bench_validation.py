"""What the optional hl7apy validation (HL7LAKE_VALIDATE) costs per message, next to the parser.

    python bench/bench_validation.py [--corpus PATH] [--passes N] [--per-message]

Every corpus message that ``parse_document`` accepts (BAD_ and BATCH files left out) is validated
once cold (hl7apy loads a version's tables on first use), then ``--passes`` times warm. Prints the
CPU time per message (what the staging worker logs as ``validate_cpu_ms``), the parser's for
comparison, and the findings by code.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.er7 import Er7Error, decode  # noqa: E402
from workers.er7_staging.document import parse_document  # noqa: E402
from workers.er7_staging.validation import validate  # noqa: E402


def load(corpus: Path) -> list[tuple[str, str, str | None]]:
    samples = []
    for path in sorted((corpus / "messages").glob("*.hl7")):
        if "BAD" in path.name or "BATCH" in path.name:
            continue
        try:
            text = decode(path.read_bytes())
            version = parse_document(text)["header"]["version"]
        except Er7Error:
            continue  # undecodable (the gateway answers 400) or no MSH-9 (047/048: a failure)
        samples.append((path.name, text, version))
    return samples


def cpu_ms(fn: Callable[..., object], *args: object) -> float:
    started = time.process_time()
    fn(*args)
    return (time.process_time() - started) * 1000


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"{name:<28} mean {statistics.fmean(values):8.2f}  median {statistics.median(values):8.2f}  "
        f"p95 {p95:8.2f}  max {ordered[-1]:8.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / ".." / "shared" / "hl7-corpus")
    parser.add_argument("--passes", type=int, default=3, help="warm passes over the corpus")
    parser.add_argument("--per-message", action="store_true", help="one line per message")
    args = parser.parse_args(argv)
    if not (args.corpus / "messages").is_dir():
        print(f"corpus not found: {args.corpus}", file=sys.stderr)
        return 2
    samples = load(args.corpus)
    size = sum(len(text.encode()) for _, text, _ in samples)
    print(f"{len(samples)} messages, {size / 1024:.1f} KiB, from {args.corpus.resolve()}\n")

    cold = [cpu_ms(validate, text, version) for _, text, version in samples]
    warm: dict[str, list[float]] = {name: [] for name, _, _ in samples}
    parse: list[float] = []
    for _ in range(max(1, args.passes)):
        for name, text, version in samples:
            warm[name].append(cpu_ms(validate, text, version))
            parse.append(cpu_ms(parse_document, text))
    per_message = [statistics.median(times) for times in warm.values()]

    print("CPU ms per message")
    print(summary("validate, first call (cold)", cold))
    print(summary("validate, warm (median)", per_message))
    print(summary("parse_document", parse))
    mean = statistics.fmean(per_message)
    ratio = mean / statistics.fmean(parse)
    print(f"\nvalidation costs {ratio:,.0f}x the parse; one core validates ~{1000 / mean:.0f} msg/s")

    codes: Counter[str] = Counter()
    severities: Counter[str] = Counter()
    clean = 0
    for name, text, version in samples:
        findings = validate(text, version)
        codes.update(f["code"] for f in findings)
        severities.update(f["severity"] for f in findings)
        clean += not findings
        if args.per_message:
            errors = sum(f["severity"] == "error" for f in findings)
            print(
                f"  {name:<28} {version or '-':<6} {statistics.median(warm[name]):8.2f} ms  "
                f"{len(findings):3d} findings ({errors} errors)"
            )
    print(f"\nfindings: {sum(codes.values())} ({dict(severities)}); {clean} messages without any")
    for code, count in codes.most_common():
        print(f"  {code:<24} {count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
