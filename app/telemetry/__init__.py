"""Tracing with OpenTelemetry, when flowlog's ``otel`` extra is installed and an exporter is
configured by the standard ``OTEL_*`` variables (docs/telemetry.md). Otherwise every call here
is a no-op and no OpenTelemetry module is imported.

The rest of flowlog speaks to ``tracing()`` only: a span per request, the W3C ``traceparent``
of the current span (recorded in the events a request appends), a span per node execution
(a child of the request whose events started the flow), and the header an outgoing call
carries."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, Protocol

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
"""The W3C Trace Context header, and the event metadata key that holds it."""
# OpenTelemetry's own variables, which its SDK reads (this only asks whether any is set): not
# flowlog's settings (app/config.py), and named as OpenTelemetry documents them.
_EXPORTER_VARIABLES = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
                       "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")  # fmt: skip


class Span(Protocol):
    def set(self, name: str, value: str | int | float | bool) -> None: ...


class Tracing(Protocol):
    enabled: bool

    def request(
        self, method: str, route: str, headers: Mapping[str, str]
    ) -> contextlib.AbstractContextManager[Span]: ...

    def node(
        self, parent: str | None, attributes: Mapping[str, str | int]
    ) -> contextlib.AbstractContextManager[Span]: ...

    def traceparent(self) -> str | None: ...

    def trace_id(self) -> str | None: ...

    def inject(self, headers: MutableMapping[str, str]) -> None: ...


class _NoSpan:
    def set(self, name: str, value: str | int | float | bool) -> None:
        return None


class _Off:
    """Tracing switched off: nothing recorded, nothing imported."""

    enabled = False

    @contextlib.contextmanager
    def request(self, method: str, route: str, headers: Mapping[str, str]) -> Iterator[Span]:
        yield _NoSpan()

    @contextlib.contextmanager
    def node(self, parent: str | None, attributes: Mapping[str, str | int]) -> Iterator[Span]:
        yield _NoSpan()

    def traceparent(self) -> str | None:
        return None

    def trace_id(self) -> str | None:
        return None

    def inject(self, headers: MutableMapping[str, str]) -> None:
        return None


_tracing: Tracing = _Off()


def tracing() -> Tracing:
    return _tracing


def wanted(env: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces: an exporter or endpoint is named, and the SDK
    is not disabled."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    return exporter != "none" and any(env.get(name, "").strip() for name in _EXPORTER_VARIABLES)


def configure(env: Mapping[str, str] | None = None, *, exporter: Any = None) -> bool:
    """Turns tracing on when ``env`` (the process's) asks for it and the extra is installed,
    or with ``exporter`` (an SDK SpanExporter: tests). Returns whether it is on."""
    global _tracing
    env = os.environ if env is None else env
    if exporter is None and not wanted(env):
        return False
    try:
        from flowlog.telemetry.otel import OtelTracing
    except ImportError as exc:
        log.warning(
            "OTEL_* variables are set but flowlog's otel extra is not installed: no traces "
            "(pip install 'flowlog[otel]')",
            extra={"error": str(exc)},
        )
        return False
    _tracing = OtelTracing(env, exporter)
    return True


def reset() -> None:
    """Tracing off again (tests)."""
    global _tracing
    if isinstance(_tracing, _Off):
        return
    shutdown = getattr(_tracing, "shutdown", None)
    if callable(shutdown):
        shutdown()
    _tracing = _Off()
