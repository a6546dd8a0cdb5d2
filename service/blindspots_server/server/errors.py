"""Map domain exceptions to gRPC status codes in one interceptor, so that
handlers raise plain exceptions and never call ``context.abort`` themselves."""
from __future__ import annotations

import logging

import grpc

from ..storage import Conflict, DataLoss, NotFound, StoreUnavailable
from .handler_wrapping import wrap_handler
from .validation import InvalidArgument

log = logging.getLogger("blindspots.server")


class PermissionDenied(Exception):
    pass


class Unauthenticated(Exception):
    pass


class ResourceExhausted(Exception):
    pass


class FailedPrecondition(Exception):
    pass


def status_for(exc: BaseException) -> grpc.StatusCode:
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, DataLoss):
        return grpc.StatusCode.DATA_LOSS
    if isinstance(exc, StoreUnavailable):      # the PostgreSQL catalog is unreachable: clients retry
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, (Conflict, FailedPrecondition)):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, (InvalidArgument, ValueError)):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, PermissionDenied):
        return grpc.StatusCode.PERMISSION_DENIED
    if isinstance(exc, Unauthenticated):
        return grpc.StatusCode.UNAUTHENTICATED
    if isinstance(exc, (ResourceExhausted, MemoryError)):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    return grpc.StatusCode.INTERNAL


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


def _abort(context: grpc.ServicerContext, exc: BaseException) -> None:
    code = status_for(exc)
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS):
        log.error("%s: %s", code.name, _message(exc), exc_info=exc)
    context.abort(code, _message(exc))


def _map_or_reraise(context: grpc.ServicerContext, exc: Exception) -> None:
    """Abort with the exception's status, unless the handler already set one (it aborted)."""
    if context.code() is not None and context.code() != grpc.StatusCode.OK:
        raise exc
    _abort(context, exc)


class ErrorMappingInterceptor(grpc.ServerInterceptor):
    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None

        def wrap_unary(fn, _streaming_request):
            def call(request_or_iterator, context):
                try:
                    return fn(request_or_iterator, context)
                except grpc.RpcError:
                    raise
                except Exception as exc:
                    _map_or_reraise(context, exc)
            return call

        def wrap_stream(fn, _streaming_request):
            def call(request_or_iterator, context):
                try:
                    yield from fn(request_or_iterator, context)
                except grpc.RpcError:
                    raise
                except Exception as exc:
                    _map_or_reraise(context, exc)
            return call

        return wrap_handler(handler, wrap_unary, wrap_stream)
