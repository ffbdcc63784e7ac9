"""W3C trace context across the hub: one OpenTelemetry trace from the front door to the lake.

The front door starts a span per accepted message (a child of the sender's `traceparent` header when
it sent one); the span's `traceparent` rides on the envelope object and goes out as one more SNS
message attribute (`Attr.TRACEPARENT`). The consumer reads it back from the SQS message attributes
and handles the message inside a child span, whose `traceparent` the envelopes it derives (and so
publishes) carry on. The envelope, not the thread's current context, carries it: publishes may go
out from another thread (group commit) or several messages at once (PublishBatch).

The SDK is configured once per process by `configure_tracing`, from the standard variables:
OTEL_SERVICE_NAME, OTEL_TRACES_EXPORTER (console | otlp | none; none when unset) and, for otlp,
OTEL_EXPORTER_OTLP_ENDPOINT (read by the exporter itself). OTEL_SDK_DISABLED=true keeps the no-op API.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACER_NAME = "hl7lake"
_propagator = TraceContextTextMapPropagator()
_configured = threading.Lock()
_done = False
_provider: trace.TracerProvider | None = None

T = TypeVar("T")


def configure_tracing(service_name: str) -> None:
    """Installs the SDK's tracer provider for this process (the first call wins; later ones do
    nothing). Spans get real ids either way; they are exported only when an exporter is configured."""
    global _done
    with _configured:
        if _done:
            return
        _done = True
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider

        name = os.environ.get("OTEL_SERVICE_NAME") or service_name
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
        choice = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower() or "none"
        exporter = span_exporter(choice)
        if exporter is not None:
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        log.info("tracing configured service=%s exporter=%s", name, choice if exporter else "none")


def span_exporter(choice: str) -> Any:
    """The exporter OTEL_TRACES_EXPORTER names (console, otlp), or None (none, or one not supported)."""
    if choice == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if choice == "otlp":  # OTLP over HTTP; OTEL_EXPORTER_OTLP_ENDPOINT is read by the exporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if choice != "none":
        log.warning("OTEL_TRACES_EXPORTER=%s is not supported (console, otlp, none): none used", choice)
    return None


def use_tracer_provider(provider: trace.TracerProvider | None) -> None:
    """Spans from ``provider`` instead of the process's global one (None: the global one again). For
    tests: the global provider can be set only once per process."""
    global _provider
    _provider = provider


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME, tracer_provider=_provider)


def context_from(traceparent: str | None) -> Context | None:
    """The remote parent a `traceparent` names; None when there is none (or it is not valid)."""
    if not traceparent:
        return None
    parent = _propagator.extract({TRACEPARENT: traceparent})
    return parent if trace.get_current_span(parent).get_span_context().is_valid else None


def traceparent_of(span: Span) -> str | None:
    """The `traceparent` naming ``span`` as the parent; None for a span without a valid context."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, trace.set_span_in_context(span))
    return carrier.get(TRACEPARENT)


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(TRACEPARENT)


def start_span(name: str, parent: str | None = None, **attributes: str) -> Span:
    """A span (not made current) under ``parent``, or under the current context when there is none."""
    return tracer().start_span(name, context=context_from(parent), attributes=attributes)


def call_with_parent(headers: Mapping[str, str], call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Runs ``call`` with the sender's trace context (its `traceparent` header) as the current one, so
    the spans it starts continue the sender's trace. For a worker thread: it attaches and detaches."""
    parent = context_from(headers.get(TRACEPARENT))
    if parent is None:
        return call(*args, **kwargs)
    token = otel_context.attach(parent)
    try:
        return call(*args, **kwargs)
    finally:
        otel_context.detach(token)


@contextmanager
def current(span: Span) -> Iterator[None]:
    """``span`` as the current one for the block; it is not ended here."""
    with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
        yield
