"""`hl7lake send PATH...`: files, folders and globs to the gateway over HTTP or MLLP, then a summary.

Exit status: 0 when nothing was rejected (duplicates are not failures), 1 when something was, 2 when
there was nothing to send."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, TextIO

from hl7lake.files import collect_files
from hl7lake.outcomes import OUTCOMES, FileOutcome, Tally
from hl7lake.progress import Progress
from hl7lake.tables import render_table


class Sender(Protocol):
    def send(self, path: Path) -> FileOutcome: ...


def send_all(sender: Sender, files: list[Path], concurrency: int, progress: Progress) -> Tally:
    tally = Tally()
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for outcome in pool.map(sender.send, files):
            tally.add(outcome)
            progress.advance(outcome)
    progress.close()
    return tally


def summary(tally: Tally) -> str:
    counts = render_table(
        ["outcome", "messages"], [(o, tally.counts[o]) for o in OUTCOMES] + [("files", tally.files)]
    )
    if not tally.reasons:
        return counts
    reasons = render_table(
        ["rejected", "reason", "e.g. file"],
        [(n, reason, tally.example[reason]) for reason, n in tally.reasons.most_common()],
    )
    return f"{counts}\n\n{reasons}"


def run_send(
    paths: Iterable[str],
    sender: Sender,
    *,
    concurrency: int = 4,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    tty: bool | None = None,
) -> int:
    files, missing = collect_files(list(paths))
    for argument in missing:
        print(f"hl7lake send: nothing matches {argument!r}", file=err)
    if not files:
        print("hl7lake send: no files to send", file=err)
        return 2
    progress = Progress(len(files), err, tty=err.isatty() if tty is None else tty)
    tally = send_all(sender, files, concurrency, progress)
    print(summary(tally), file=out)
    return 1 if tally.failed or missing else 0
