"""The ingest use case: from ER7 bytes and a verified principal to an event in the hub."""

from __future__ import annotations

import base64
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from opentelemetry.trace import Span, StatusCode
from opentelemetry.trace import Status as SpanStatus

from gateway import ingest_metrics
from gateway.auth import Principal
from gateway.backlog import BacklogMonitor
from gateway.completions import DeferredCompletions
from gateway.dedup import Claim, ClaimState, DedupStore, DedupUnavailable, Fingerprint
from gateway.outcomes import (
    BatchOutcome,
    BatchProcessing,
    IngestOutcome,
    IngestResult,
    MemberOutcome,
    MessageSummary,
    Status,
)
from gateway.problems import Problem, in_progress, internal_error, unavailable
from hub import er7, steps, telemetry
from hub.events import Envelope, Event, Format, utc_timestamp
from hub.ids import new_message_id
from hub.publisher import HubRejected, HubUnavailable, Publisher
from hub.tracebacks import exception_location

log = logging.getLogger(__name__)

ER7_MEDIA_TYPES = ("application/hl7-v2", "x-application/hl7-v2+er7", "text/plain")
CONTROL_ID_REUSED = "controlIdReused"


@dataclass(frozen=True)
class MediaType:
    essence: str
    charset: str | None

    @classmethod
    def parse(cls, header: str | None) -> MediaType:
        if not header:
            return cls("", None)
        essence, *params = (part.strip() for part in header.split(";"))
        charset = None
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset":
                charset = value.strip().strip('"') or None
        return cls(essence.lower(), charset)


def check_media_type(header: str | None) -> MediaType:
    media = MediaType.parse(header)
    if media.essence not in ER7_MEDIA_TYPES:
        raise Problem(
            415,
            "unsupported_media_type",
            f"Content-Type {media.essence or '(none)'!r} is not ER7; use one of {', '.join(ER7_MEDIA_TYPES)}",
        )
    return media


def choose_source(principal: Principal, requested: str | None) -> str:
    if not principal.write:
        raise Problem(
            403, "forbidden", "your token carries no 'write' institution: you may not send messages"
        )
    if requested:
        if requested not in principal.write:
            raise Problem(403, "forbidden", f"X-Source {requested!r} is not one of your write institutions")
        return requested
    if len(principal.write) > 1:
        raise Problem(
            400,
            "source_required",
            "your token may write for several institutions; choose one with the X-Source header",
            details={"allowed": list(principal.write)},
        )
    return principal.write[0]


def unexpected(exc: BaseException) -> Problem:
    """A programming error as an answer: 500 with an error id that is in the log with the exception's
    type and location (never its text, which may quote a message value)."""
    error_id = new_message_id()
    log.error(
        "unexpected error error_id=%s error=%s at=%s", error_id, type(exc).__name__, exception_location(exc)
    )
    return internal_error(error_id)


def hub_rejected(message_id: str) -> Problem:
    """The hub refused an event of ours (SNS InvalidParameter): a defect, not something a retry cures."""
    error_id = new_message_id()
    log.error("hub rejected event id=%s error_id=%s", message_id, error_id)
    return internal_error(error_id)


def _bad_message(err: er7.Er7Error, rejected_id: str | None) -> Problem:
    details = {**err.to_dict(), "id": rejected_id}
    return Problem(400, "bad_message", str(err), details=details, condition=err.condition)


@dataclass(frozen=True)
class BatchLink:
    """Stored with every member of a batch (catalog `batch`), so the batch can be found from any of them."""

    id: str
    index: int
    count: int
    problems: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        link: dict[str, Any] = {"id": self.id, "index": self.index, "count": self.count}
        if self.problems:
            link["problems"] = list(self.problems)
        return link


class _AlreadyInThisBatch(Exception):
    """A member accepted by an earlier attempt at the same batch (a retried split)."""

    def __init__(self, summary: MessageSummary) -> None:
        super().__init__("accepted earlier in this batch")
        self.summary = summary


@dataclass(frozen=True)
class _Claimed:
    claim: Claim
    envelope: Envelope
    summary: MessageSummary
    span: Span | None = None


class IngestService:
    """Accepts ER7 bodies: one message, several messages, or FHS/BHS batches (one entry per message)."""

    def __init__(
        self,
        dedup: DedupStore,
        publisher: Publisher,
        *,
        backlog: BacklogMonitor | None = None,
        sync_batch_limit: int = 100,
        max_messages: int = 10_000,
        after_publish: Callable[[Envelope], None] | None = None,
        door: str = "http",
        service: str = "gateway",
    ) -> None:
        self._door = door  # the metrics' label: http, mllp or batch-splitter
        self._dedup = dedup
        self._publisher = publisher
        self._backlog = backlog
        self._sync_batch_limit = sync_batch_limit
        self._max_messages = max_messages
        # Fault injection for tests: runs between the publish and the dedup completion.
        self._after_publish = after_publish
        self._service = service  # who the message's path says accepted it

    def ingest(
        self, body: bytes, media: MediaType, source: str, *, split_later: bool = False
    ) -> IngestResult:
        """The answer for one body. With split_later, a batch of more than `sync_batch_limit` messages
        is accepted as a whole and split by the batch splitter; its outcomes come later."""
        try:
            result = self._ingest(body, media, source, split_later=split_later)
        except Problem as problem:
            ingest_metrics.count_problem(self._door, problem, str(problem.details.get("messageType") or ""))
            raise
        ingest_metrics.count_result(self._door, result)
        return result

    def _ingest(self, body: bytes, media: MediaType, source: str, *, split_later: bool) -> IngestResult:
        self._refuse_when_behind()
        try:
            text, flags = er7.decode_flagged(body, media.charset)
            normalized = er7.normalize(text)
            batch = er7.split_batch(normalized)
        except er7.Er7Error as err:
            raise _bad_message(err, self._keep_rejected(body, source, err)) from None
        self._check_count(len(batch.messages))
        if len(batch.messages) == 1 and not batch.header_segments and not batch.trailer_segments:
            return self._one(text, normalized, source, body_size=len(body), flags=flags)
        if split_later and len(batch.messages) > self._sync_batch_limit:
            return self._accept_whole(normalized, batch, source, len(body))
        return self._batch(batch, source, len(body), flags)

    def _one(
        self, text: str, normalized: str, source: str, *, body_size: int, flags: tuple[str, ...] = ()
    ) -> IngestOutcome:
        claimed = self._claim(text, normalized, source, None, flags)
        return self._settle(claimed, self._publish([claimed])[0], body_size)

    def _claim(
        self,
        text: str,
        normalized: str,
        source: str,
        link: BatchLink | None,
        body_flags: tuple[str, ...] = (),
    ) -> _Claimed:
        """The message read, deduplicated and claimed, its event ready; else the Problem to answer.
        ``body_flags``: what decoding the body tolerated (unknown-charset, charset-mismatch)."""
        try:
            header = er7.read_header(normalized)
        except er7.Er7Error as err:
            raise _bad_message(err, self._keep_rejected(text.encode("utf-8"), source, err, link)) from None
        digest = er7.dedup_digest(normalized)
        try:
            claim = self._dedup.claim(
                Fingerprint(source, header.control_id, digest),
                new_message_id(),
                utc_timestamp(),
                batch_id=link.id if link else "",
            )
        except DedupUnavailable:
            raise unavailable("deduplication store unavailable") from None
        known = MessageSummary(claim.message_id, header.message_type, header.control_id, source)
        if claim.state is ClaimState.DUPLICATE:
            if link and claim.batch_id == link.id:  # accepted by an earlier attempt at this very batch
                raise _AlreadyInThisBatch(known)
            log.info("duplicate id=%s source=%s type=%s", claim.message_id, source, header.message_type)
            raise Problem(
                409,
                "duplicate",
                "this message was already accepted",
                details={"duplicate": True, "id": claim.message_id, "status": "duplicate", **known.fields()},
            )
        if claim.state is ClaimState.IN_PROGRESS:
            raise in_progress(claim.message_id)
        reused = (CONTROL_ID_REUSED,) if claim.control_id_reused else ()
        flags = tuple(dict.fromkeys((*body_flags, *header.flags, *reused)))
        envelope = Envelope(
            event=Event.RECEIVED,
            id=claim.message_id,
            source=source,
            received_at=claim.received_at,
            message_type=header.message_type,
            control_id=header.control_id,
            format=Format.ER7,
            payload=text,
            digest=digest,
            flags=flags,
            batch=link.to_dict() if link else None,
        )
        span = telemetry.start_span("gateway accept", **{"hl7lake.message_id": claim.message_id})
        # The step is done when the event is ready to go: it must travel inside it.
        accepted = steps.step(self._service, envelope, "accepted", claim.received_at)
        envelope = replace(steps.with_steps(envelope, accepted), traceparent=telemetry.traceparent_of(span))
        return _Claimed(claim, envelope, dataclasses.replace(known, flags=flags), span)

    def _publish(self, claimed: list[_Claimed]) -> list[Exception | None]:
        if len(claimed) == 1:
            try:
                self._publisher.publish(claimed[0].envelope)
            except (HubUnavailable, HubRejected) as exc:
                return [exc]
            return [None]
        return self._publisher.publish_batch([c.envelope for c in claimed])

    def _settle(self, claimed: _Claimed, outcome: Exception | None, body_size: int) -> IngestOutcome:
        """The answer for a claimed message once its publish is known; its claim completed or let go."""
        if claimed.span is not None:
            if outcome is not None:
                claimed.span.set_status(SpanStatus(StatusCode.ERROR, outcome.__class__.__name__))
            claimed.span.end()
        claim = claimed.claim
        if isinstance(outcome, HubRejected):
            self._abandon(claim)
            raise hub_rejected(claim.message_id)
        if isinstance(outcome, HubUnavailable):
            self._abandon(claim)
            raise unavailable(str(outcome))
        if outcome is not None:  # not a dependency failure a retry cures
            self._abandon(claim)
            raise unexpected(outcome)
        if self._after_publish is not None:
            self._after_publish(claimed.envelope)
        try:
            self._dedup.complete(claim)
        except Exception as exc:  # already in the hub: acknowledge; a retry takes the claim over (same id)
            log.warning("dedup completion failed id=%s error=%s", claim.message_id, exc.__class__.__name__)
        log.info(
            "accepted id=%s source=%s type=%s bytes=%d reused_control_id=%s",
            claim.message_id,
            claimed.envelope.source,
            claimed.envelope.message_type,
            body_size,
            claim.control_id_reused,
        )
        return IngestOutcome(claimed.summary, claim.control_id_reused)

    def _batch(
        self, batch: er7.Batch, source: str, body_size: int, flags: tuple[str, ...] = ()
    ) -> BatchOutcome:
        batch_id = new_message_id()
        problems = tuple(p.to_dict() for p in batch.problems)
        results = self.accept_members(batch.messages, source, batch_id, problems, {}, body_flags=flags)
        answer = BatchOutcome(batch_id, tuple(results), batch.declared_counts, problems)
        log.info(
            "batch id=%s source=%s messages=%d bytes=%d accepted=%d duplicate=%d rejected=%d",
            batch_id,
            source,
            len(results),
            body_size,
            *(answer.count(s) for s in Status),
        )
        return answer

    def accept_members(
        self,
        messages: Sequence[str],
        source: str,
        batch_id: str,
        problems: tuple[dict[str, Any], ...],
        seen: dict[str, MessageSummary],
        *,
        first_index: int = 1,
        count: int | None = None,
        body_flags: tuple[str, ...] = (),
    ) -> list[MemberOutcome]:
        """Each message of a batch accepted, deduplicated or rejected on its own; the accepted ones
        published together (SNS PublishBatch). `seen` maps digests met earlier in the batch to what
        they are. A 503 stops the batch: a retry of it is safe, since what was accepted comes back as
        accepted (same ids), and what was claimed but not acknowledged is taken over under its id."""
        count = count or len(messages)
        results: dict[int, MemberOutcome] = {}
        claimed: dict[int, _Claimed] = {}
        try:
            for index, message in enumerate(messages, start=first_index):
                digest = er7.dedup_digest(message)
                if digest in seen:
                    results[index] = MemberOutcome(index, Status.DUPLICATE, seen[digest])
                    continue
                link = BatchLink(batch_id, index, count, problems)
                try:
                    claimed[index] = self._claim(message, message, source, link, body_flags)
                    seen[digest] = claimed[index].summary
                except _AlreadyInThisBatch as earlier:
                    results[index] = MemberOutcome(index, Status.ACCEPTED, earlier.summary)
                    seen[digest] = earlier.summary
                except Problem as problem:
                    if problem.status == 503:
                        raise
                    status = Status.DUPLICATE if problem.status == 409 else Status.REJECTED
                    results[index] = MemberOutcome(index, status, problem)
        except Problem:
            for held in claimed.values():
                self._abandon(held.claim)
            raise
        outcomes = self._publish(list(claimed.values())) if claimed else []
        failure: Problem | None = None
        for (index, held), outcome in zip(claimed.items(), outcomes, strict=True):
            try:
                settled = self._settle(held, outcome, len(held.envelope.payload))
                results[index] = MemberOutcome(index, Status.ACCEPTED, settled)
            except Problem as problem:
                failure = failure or problem
        if failure is not None:
            raise failure
        members = [results[i] for i in sorted(results)]
        if self._door == "batch-splitter":  # the front door counts the batches it answers itself
            ingest_metrics.count_members(self._door, members)
        return members

    def _accept_whole(
        self, normalized: str, batch: er7.Batch, source: str, body_size: int
    ) -> BatchProcessing:
        """A large batch body is in the hub as one event (its bytes by claim check) before the answer;
        the batch splitter deduplicates and publishes its messages, then reports their outcomes."""
        batch_id = new_message_id()
        problems = [p.to_dict() for p in batch.problems]
        envelope = Envelope(
            event=Event.BATCH_RECEIVED,
            id=batch_id,
            source=source,
            received_at=utc_timestamp(),
            message_type="batch",
            control_id="",
            format=Format.ER7,
            payload=normalized,
            batch={
                "id": batch_id,
                "count": len(batch.messages),
                "declaredCounts": batch.declared_counts,
                "problems": problems,
            },
        )
        try:
            self._publisher.publish(envelope)
        except HubUnavailable as exc:
            raise unavailable(str(exc)) from None
        except HubRejected:
            raise hub_rejected(batch_id) from None
        log.info(
            "batch accepted whole id=%s source=%s messages=%d bytes=%d",
            batch_id,
            source,
            len(batch.messages),
            body_size,
        )
        return BatchProcessing(batch_id, len(batch.messages), batch.declared_counts, problems)

    def _check_count(self, count: int) -> None:
        if count > self._max_messages:
            raise Problem(
                413,
                "too_many_messages",
                f"body holds {count} messages, over the limit of {self._max_messages} per request; "
                "send them in several requests",
                details={"messages": count, "limit": self._max_messages},
            )

    def flush(self) -> None:
        """Writes the dedup completions still waiting for their batch (see gateway.completions)."""
        if isinstance(self._dedup, DeferredCompletions):
            self._dedup.flush()

    def close(self) -> None:
        """Before the process stops: nothing pending is left behind."""
        if isinstance(self._dedup, DeferredCompletions):
            self._dedup.close()

    @property
    def backlog(self) -> BacklogMonitor | None:
        return self._backlog

    @property
    def publisher(self) -> Publisher:
        return self._publisher

    def _refuse_when_behind(self) -> None:
        if self._backlog is None:
            return
        backlog = self._backlog.current()
        if backlog.behind:
            waiting = ", ".join(f"{name}: {backlog.depths[name]}" for name in backlog.behind)
            raise Problem(
                503,
                "busy",
                f"the pipeline is behind (events waiting: {waiting}; limit {backlog.limit}); "
                "not acknowledged: retry the same request later",
                details={"backlog": backlog.to_dict()},
                headers={"Retry-After": "5"},
            )

    def _keep_rejected(
        self, raw: bytes, source: str, err: er7.Er7Error, link: BatchLink | None = None
    ) -> str | None:
        """A message the front door cannot read still lands in the lake (errors/), raw bytes included.
        Best effort: the sender is told 400 either way, and may resend a corrected message."""
        if not raw.strip():
            return None
        rejected_id = new_message_id()
        envelope = Envelope(
            event=Event.FAILED,
            id=rejected_id,
            source=source,
            received_at=utc_timestamp(),
            message_type="unknown",
            control_id="",
            format=Format.TEXT,
            payload=base64.b64encode(raw).decode("ascii"),
            error={**err.to_dict(), "stage": "gateway"},
            batch=link.to_dict() if link else None,
            extra={"payloadEncoding": "base64"},
        )
        reason = (envelope.error or {}).get("reason")
        envelope = steps.with_steps(
            envelope, steps.step(self._service, envelope, "rejected", envelope.received_at, reason)
        )
        try:
            self._publisher.publish(envelope)
        except HubUnavailable:
            log.warning("rejected message not kept (hub unavailable) source=%s bytes=%d", source, len(raw))
            return None
        log.info("rejected id=%s source=%s bytes=%d field=%s", rejected_id, source, len(raw), err.field)
        return rejected_id

    def _abandon(self, claim: Claim) -> None:
        try:
            self._dedup.abandon(claim)
        except Exception as exc:  # the claim goes stale after in_progress_seconds
            log.warning("dedup abandon failed id=%s error=%s", claim.message_id, exc.__class__.__name__)
