"""OpenTelemetry traces of the server's calls and jobs, sent over OTLP/HTTP.

On when ``otlp_endpoint`` is set (``--otlp-endpoint http://collector:4318``), or when the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is, and the
``tracing`` extra is installed (opentelemetry-sdk and its OTLP/HTTP exporter). Each RPC is a
server span named after its method, continuing the caller's trace when the request carries
W3C ``traceparent`` metadata (the SDK sends it from the active span); a diagnosis or index
build is a span of its own, a child of the call that started it when that call ran in this
process. The access log names each call's trace id. Off, nothing is imported and no call pays
for it.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator, Optional

log = logging.getLogger("blindspots.server")

_STANDARD_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


class Tracing:
    """The server's tracer, or nothing (``enabled`` False): every method is then a no-op."""

    def __init__(self, endpoint: str = "", service_name: str = "blindspots-server"):
        self.enabled = False
        self._provider = None
        endpoint = endpoint or ""
        if not endpoint and not any(os.environ.get(name) for name in _STANDARD_ENDPOINTS):
            return
        try:
            from opentelemetry import propagate, trace
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            log.warning("tracing asked for (%s) but OpenTelemetry is not installed: pip install "
                        "'blindspots-server[tracing]'; serving without traces", endpoint or "OTEL_EXPORTER_OTLP_*")
            return
        if endpoint and not endpoint.rstrip("/").endswith("/v1/traces"):
            endpoint = endpoint.rstrip("/") + "/v1/traces"      # as the standard variable is read
        exporter = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
        # A provider of our own, not the process-wide one: a server embedded in a pipeline's process
        # leaves that process's tracing as it found it.
        self._provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer("blindspots.server")
        self._trace, self._propagate = trace, propagate
        self.enabled = True
        log.info("tracing to %s", endpoint or "the OTEL_EXPORTER_OTLP_* endpoint")

    @classmethod
    def off(cls) -> "Tracing":
        """No tracing, whatever the environment says (a servicer or interceptor built without one)."""
        off = cls.__new__(cls)
        off.enabled, off._provider = False, None
        return off

    def start_call(self, method: str, metadata) -> tuple[Any, Any]:
        """A server span for ``method`` (``/package.Service/Method``), in the trace the caller's
        ``traceparent`` names; (span, token to pass to :meth:`end_call`), or (None, None)."""
        if not self.enabled:
            return None, None
        from opentelemetry import context
        carrier = {k: v for k, v in (metadata or ()) if isinstance(v, str)}
        parent = self._propagate.extract(carrier)
        service, _, name = method.lstrip("/").partition("/")
        span = self._tracer.start_span(method.lstrip("/"), context=parent, kind=self._trace.SpanKind.SERVER,
                                       attributes={"rpc.system": "grpc", "rpc.service": service,
                                                   "rpc.method": name})
        return span, context.attach(self._trace.set_span_in_context(span, parent))

    def end_call(self, span, token, code: str) -> None:
        if span is None:
            return
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode
        span.set_attribute("rpc.grpc.status_code", code)
        if code != "OK":
            span.set_status(Status(StatusCode.ERROR, code))
        span.end()
        with contextlib.suppress(ValueError):   # a token attached in another context (a generator moved threads)
            context.detach(token)

    @staticmethod
    def trace_id(span) -> str:
        """The span's trace id as 32 hex digits ("" without a span)."""
        return f"{span.get_span_context().trace_id:032x}" if span is not None else ""

    def current(self) -> Optional[dict[str, str]]:
        """The active span's context as W3C headers, to start a job's span under it later."""
        if not self.enabled:
            return None
        carrier: dict[str, str] = {}
        self._propagate.inject(carrier)
        return carrier or None

    @contextlib.contextmanager
    def job(self, kind: str, job_id: str, parent: Optional[dict[str, str]] = None) -> Iterator[None]:
        """A span around a job's run, a child of ``parent`` (:meth:`current` at submission) if given."""
        if not self.enabled:
            yield
            return
        context = self._propagate.extract(parent) if parent else None
        with self._tracer.start_as_current_span(f"blindspots.job/{kind}", context=context,
                                                attributes={"blindspots.job_id": job_id,
                                                            "blindspots.job_kind": kind}) as span:
            try:
                yield
            except BaseException as exc:
                from opentelemetry.trace import Status, StatusCode
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise

    def shutdown(self) -> None:
        """Send what is buffered, then stop."""
        if self._provider is not None:
            self._provider.shutdown()
