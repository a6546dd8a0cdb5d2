"""Per-RPC metrics, access logs and trace spans, in one interceptor around every handler.

Registered first (outermost) so it also sees calls that later interceptors
reject (authentication) and the status codes the error mapping sets.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Callable, Iterable, Iterator, Optional

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from .handler_wrapping import wrap_handler
from .telemetry import Telemetry
from .tracing import Tracing

access_log = logging.getLogger("blindspots.access")

# Request fields worth a log line: they say which run/pool/job a call touched.
_ID_FIELDS = ("run_id", "pool_id", "job_id", "diagnosis_id")
# Probes call these every few seconds; their lines go to DEBUG so the access log stays readable.
_QUIET_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                   "grpc.reflection.v1.ServerReflection")


def _ids(message) -> dict[str, str]:
    out = {}
    fields = getattr(getattr(message, "DESCRIPTOR", None), "fields_by_name", {})
    for name in _ID_FIELDS:
        if name in fields:
            value = getattr(message, name)
            if value:
                out[name] = value
    return out


def _final_code(context: grpc.ServicerContext, failed: bool) -> grpc.StatusCode:
    """The status the client sees: what a handler or interceptor set, else OK/UNKNOWN/CANCELLED."""
    code = context.code()
    if code is not None:
        return code
    if failed:
        return grpc.StatusCode.UNKNOWN          # grpcio's answer to an unhandled exception
    if not context.is_active():
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.OK


class ObservabilityInterceptor(grpc.ServerInterceptor):
    """Counts, times and logs every call of the registered services."""

    def __init__(self, telemetry: Telemetry, services: Iterable[ServiceDescriptor], tracing: Optional[Tracing] = None):
        self._telemetry = telemetry
        self._methods = telemetry.register_methods(services)
        self._tracing = tracing or Tracing.off()

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        labels = self._methods.get(handler_call_details.method)
        # Unknown methods (UNIMPLEMENTED) carry client-chosen names: never a label value.
        if handler is None or labels is None:
            return handler
        method = handler_call_details.method
        quiet = labels[0] in _QUIET_SERVICES

        def finish(context, started: float, ids: dict[str, str], failed: bool, span) -> None:
            seconds = time.perf_counter() - started
            code = _final_code(context, failed)
            self._telemetry.rpc_handled(labels, code.name, seconds)
            self._tracing.end_call(*span, code.name)
            level = logging.DEBUG if quiet else logging.INFO
            if access_log.isEnabledFor(level):
                trace = {"trace_id": self._tracing.trace_id(span[0])} if span[0] is not None else {}
                access_log.log(level, json.dumps({
                    "ts": round(time.time(), 3), "method": method, "code": code.name,
                    "duration_ms": round(seconds * 1000, 2), "peer": context.peer(), **ids, **trace}))

        def requests_seen(iterator: Iterator, ids: dict[str, str]) -> Iterator:
            # Streaming requests name their run/pool in the first message.
            for i, message in enumerate(iterator):
                if i == 0:
                    ids.update(_ids(message))
                yield message

        def begin(request, streaming_request: bool):
            """(start time, request to pass on, the ids the access log names, the call's span and
            its context token: (None, None) without tracing, or for the probes)."""
            self._telemetry.rpc_started(labels)
            ids: dict[str, str] = {}
            if streaming_request:
                request = requests_seen(request, ids)
            else:
                ids = _ids(request)
            span = ((None, None) if quiet else
                    self._tracing.start_call(method, handler_call_details.invocation_metadata))
            return time.perf_counter(), request, ids, span

        def unary_response(fn: Callable, streaming_request: bool):
            def call(request, context):
                started, request, ids, span = begin(request, streaming_request)
                failed = True
                try:
                    response = fn(request, context)
                    failed = False
                    return response
                finally:
                    finish(context, started, ids, failed, span)
            return call

        def stream_response(fn: Callable, streaming_request: bool):
            def call(request, context):
                started, request, ids, span = begin(request, streaming_request)
                failed = True
                try:
                    yield from fn(request, context)
                    failed = False
                except GeneratorExit:
                    failed = False    # the client went away; _final_code reports CANCELLED
                    raise
                finally:
                    finish(context, started, ids, failed, span)
            return call

        return wrap_handler(handler, unary_response, stream_response)


class JsonLineFormatter(logging.Formatter):
    """Emits the record's message alone: access-log messages are already JSON objects."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


def configure_access_log(stream=None) -> None:
    """Send ``blindspots.access`` lines, one JSON object each, to ``stream`` (stderr by default)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    access_log.handlers[:] = [handler]
    access_log.propagate = False
