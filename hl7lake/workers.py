"""Worker entrypoints by subscriber name."""

from __future__ import annotations

import sys

from hub.topology import SUBSCRIPTIONS


def run_worker_by_name(name: str) -> int:
    if name == "er7-staging":
        from workers.er7_staging import bootstrap as er7

        er7.run()
    elif name == "lake-writer":
        from lake import bootstrap as lake

        lake.run()
    elif name == "batch-splitter":
        from gateway.splitter import bootstrap as splitter

        splitter.run()
    elif name == "fhir-r4":
        from workers.fhir import bootstrap as fhir

        fhir.run()
    else:
        print(
            f"hl7lake worker: unknown worker {name!r} (known: {', '.join(sorted(SUBSCRIPTIONS))})",
            file=sys.stderr,
        )
        return 2
    return 0
