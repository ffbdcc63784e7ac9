"""Large batch bodies accepted whole: their progress, then every message's outcome."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter

from gateway.deps import CurrentPrincipal, Services
from gateway.problems import Problem

router = APIRouter(prefix="/v1/batches", tags=["batches"])

SUMMARY_FIELDS = ("id", "status", "source", "receivedAt", "messages", "accepted", "duplicate", "rejected")


@router.get("/{batch_id}", summary="A batch body's outcome: `processing`, then each message's outcome")
def get_batch(batch_id: str, services: Services, principal: CurrentPrincipal) -> dict[str, Any]:
    item = services.reader.get(batch_id) if len(batch_id) <= 64 else None
    if item is None or item.get("kind") != "batch" or item.get("source") not in principal.read:
        # Also while the lake writer has not yet recorded a batch accepted a moment ago.
        raise Problem(404, "not_found", f"no batch {batch_id!r} visible to you (yet)")
    summary = {name: item[name] for name in SUMMARY_FIELDS if name in item}
    if item.get("status") != "completed":
        return {"batch": summary, "messages": None}
    body = services.reader.read_object(item["outcomes"])
    if body is None:
        raise Problem(404, "not_available", f"the outcomes of batch {batch_id!r} are not in the lake")
    report: dict[str, Any] = json.loads(body)
    return {"batch": {**report["batch"], **summary}, "messages": report["messages"]}
