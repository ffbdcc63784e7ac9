"""Benchmark the HL7 v2 → FHIR R4 mapping on the corpus ADT and ORU messages, on one core.

    python bench/bench_fhir.py [--seconds N]

The documents are parsed once beforehand (the worker receives them parsed); only ``convert`` is
timed. Prints Bundles per second (wall clock) and CPU microseconds per message; the goal is
>= 1,000 messages/s. Messages the mapping refuses are left out (they are counted).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.document import ParsedDocument  # noqa: E402
from tests.unit.fhir_corpus import mapped_documents  # noqa: E402  (parsed as the staging worker does)
from workers.fhir.mapping import MAPPED_TYPES, MappingError, convert  # noqa: E402

GOAL = 1_000
BENCHED = {t for t in MAPPED_TYPES if t.startswith(("ADT^", "ORU^"))}
CORPORA = (ROOT.parent / "shared" / "hl7-corpus", ROOT.parent / "shared" / "hl7-peer-corpus")


def load(roots: tuple[Path, ...]) -> tuple[list[tuple[str, ParsedDocument]], int]:
    documents, refused = [], 0
    for name, document in mapped_documents(*roots):
        if document["header"]["messageType"] not in BENCHED:
            continue
        try:
            convert(document, name)
        except MappingError:
            refused += 1
            continue
        documents.append((name, document))
    return documents, refused


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to convert (default 3)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    documents, refused = load(CORPORA)
    if not documents:
        print("no corpus messages found under ../shared/", file=sys.stderr)
        return 1
    segments = sum(len(doc["segments"]) for _, doc in documents)
    converted = entries = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < args.seconds:
        for name, document in documents:
            entries += len(convert(document, name)["entry"])
        converted += len(documents)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    rate = converted / wall
    print(
        f"corpus: {len(documents)} ADT/ORU messages ({segments} segments), {refused} refused by the mapping"
    )
    print(f"converted: {converted} Bundles, {entries / converted:.1f} entries each, in {wall:.2f} s")
    print(f"throughput: {rate:,.0f} Bundles/s on one core (goal >= {GOAL:,})")
    print(f"CPU: {cpu / converted * 1e6:,.0f} us per message")
    print("goal met" if rate >= GOAL else "goal NOT met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
