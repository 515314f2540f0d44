"""The OpenTelemetry side of app.telemetry (imported only when tracing is configured)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from flowlog.telemetry import TRACEPARENT

_PROPAGATOR = TraceContextTextMapPropagator()
_FAILED = frozenset({"failure", "timeout", "interrupted"})
"""Node outcomes (app/workflow/reactor.py) that mark their span as an error."""


class _Span:
    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def set(self, name: str, value: str | int | float | bool) -> None:
        self.span.set_attribute(name, value)
        if (name == "flowlog.outcome" and value in _FAILED) or (
            name == "http.response.status_code" and isinstance(value, int) and value >= 500
        ):
            self.span.set_status(Status(StatusCode.ERROR))


class OtelTracing:
    enabled = True

    def __init__(self, env: Mapping[str, str], exporter: SpanExporter | None) -> None:
        name = env.get("OTEL_SERVICE_NAME", "").strip() or "flowlog"
        self.provider = TracerProvider(resource=Resource.create({"service.name": name}))
        if exporter is not None:
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            self.provider.add_span_processor(_processor(env))
        self.tracer = self.provider.get_tracer("flowlog")

    @contextlib.contextmanager
    def request(self, method: str, route: str, headers: Mapping[str, str]) -> Iterator[_Span]:
        parent = _PROPAGATOR.extract(carrier=dict(headers))
        with self.tracer.start_as_current_span(
            f"{method} {route}", context=parent, kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route},
        ) as span:  # fmt: skip
            yield _Span(span)

    @contextlib.contextmanager
    def node(self, parent: str | None, attributes: Mapping[str, str | int]) -> Iterator[_Span]:
        context: Context | None = None
        if parent is not None:
            context = _PROPAGATOR.extract(carrier={TRACEPARENT: parent})
        with self.tracer.start_as_current_span(
            f"node {attributes.get('flowlog.node', '')}", context=context,
            kind=SpanKind.INTERNAL, attributes=dict(attributes),
        ) as span:  # fmt: skip
            yield _Span(span)

    def traceparent(self) -> str | None:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get(TRACEPARENT)

    def trace_id(self) -> str | None:
        span_context = trace.get_current_span().get_span_context()
        return f"{span_context.trace_id:032x}" if span_context.is_valid else None

    def inject(self, headers: MutableMapping[str, str]) -> None:
        _PROPAGATOR.inject(headers)

    def shutdown(self) -> None:
        self.provider.shutdown()


def _processor(env: Mapping[str, str]) -> Any:
    """The exporter ``OTEL_TRACES_EXPORTER`` names (``otlp``, the default, over HTTP, set up
    by the ``OTEL_EXPORTER_OTLP_*`` variables; or ``console``: JSON on stdout)."""
    kind = env.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp"
    if kind == "console":
        return SimpleSpanProcessor(ConsoleSpanExporter())
    if kind != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER={kind!r}: flowlog knows otlp, console, none")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return BatchSpanProcessor(OTLPSpanExporter())
