"""Process-wide logging: one line per event, ids and sizes only (never message bodies)."""

from __future__ import annotations

import logging
import os


def configure(service: str) -> None:
    level = os.environ.get("HL7LAKE_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s %(levelname)s [{service}] %(name)s: %(message)s",
        force=True,
    )
    for noisy in ("botocore", "boto3", "urllib3", "httpx", "werkzeug", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
