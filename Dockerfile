# One image for every hl7lake service; each compose service picks its command
# (`hl7lake gateway`, `hl7lake worker er7-staging`, `hl7lake worker lake-writer`, `hl7lake bootstrap`).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HL7LAKE_STACKS_DIR=/app/stacks \
    HL7LAKE_HEARTBEAT_DIR=/tmp/hl7lake

WORKDIR /app
RUN useradd --system --uid 10001 --no-create-home --home-dir /app hl7lake

# Dependency layer: only the runtime lock (every package pinned, every file's hash checked), so code
# changes do not reinstall dependencies. `make lock` refreshes it from pyproject.toml.
COPY requirements/runtime.lock ./requirements/
RUN pip install --require-hashes -r requirements/runtime.lock

# Code layer (no dev dependencies, no emulator: the compose file runs those as their own services).
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY gateway ./gateway
COPY workers ./workers
COPY lake ./lake
COPY hl7lake ./hl7lake
COPY stacks ./stacks
RUN pip install --no-deps . && rm -rf build *.egg-info

USER hl7lake
EXPOSE 8080 2575
CMD ["hl7lake", "--help"]
