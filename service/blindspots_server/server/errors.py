"""Map domain exceptions to gRPC status codes in one interceptor, so that
handlers raise plain exceptions and never call ``context.abort`` themselves."""
from __future__ import annotations

import errno
import logging
import sqlite3
import uuid

import grpc

from ..core.parallel import WorkerLost, WorkersUnplaceable
from ..core.pool_index import GpuUnavailable
from ..storage import Conflict, DataLoss, DuplicateSampleIds, NotFound, StoreUnavailable
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


# Exceptions that are the caller's doing, and their status. Everything else is the
# server's fault: INTERNAL with a message that names no file, the detail in the log.
# A plain ValueError is not here on purpose: raised deep inside pyarrow, numpy or our
# core it means the server broke, so handlers raise InvalidArgument naming the field.
_CLIENT_ERRORS: tuple[tuple[type, grpc.StatusCode], ...] = (
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (DataLoss, grpc.StatusCode.DATA_LOSS),
    (StoreUnavailable, grpc.StatusCode.UNAVAILABLE),    # the PostgreSQL catalog is unreachable: clients retry
    (WorkerLost, grpc.StatusCode.UNAVAILABLE),          # a Ray worker gone mid-call: the retry starts it anew
    (Conflict, grpc.StatusCode.FAILED_PRECONDITION),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (GpuUnavailable, grpc.StatusCode.FAILED_PRECONDITION),  # a shard asked to be on a GPU it cannot have
    (WorkersUnplaceable, grpc.StatusCode.RESOURCE_EXHAUSTED),  # shards whose GPU shares are held by others
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (DuplicateSampleIds, grpc.StatusCode.INVALID_ARGUMENT),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (MemoryError, grpc.StatusCode.RESOURCE_EXHAUSTED),
)


DISK_FULL = ("the server's disk is full; nothing of the failed write was stored (the data stored "
             "before it is intact): retry once the operator has freed space")
_SQLITE_FULL = 13


_PG_DISK_FULL = "53100"      # PostgreSQL's disk_full SQLSTATE (psycopg.errors.DiskFull)


def is_disk_full(exc: BaseException) -> bool:
    """An out-of-space error from the file system (ENOSPC, EDQUOT), SQLite (SQLITE_FULL) or
    PostgreSQL (disk_full)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if getattr(exc, "sqlstate", None) == _PG_DISK_FULL:
        return True
    return isinstance(exc, sqlite3.OperationalError) and getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL


def status_for(exc: BaseException) -> grpc.StatusCode:
    if is_disk_full(exc):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    for kind, code in _CLIENT_ERRORS:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


def client_message(exc: BaseException) -> str:
    """What the caller is told about ``exc``: our own exceptions' messages (they name ids
    and fields, never server paths); for anything else a fixed sentence with a reference
    the server log carries next to the detail."""
    if isinstance(exc, MemoryError):
        return "the server ran out of memory for this call; nothing of it was stored"
    if is_disk_full(exc):
        log.error("disk full: %s", exc)
        return DISK_FULL
    if status_for(exc) != grpc.StatusCode.INTERNAL:
        if isinstance(exc, KeyError) and exc.args:
            return str(exc.args[0])
        return str(exc) or type(exc).__name__
    ref = uuid.uuid4().hex[:12]
    log.error("internal error ref=%s: %s: %s", ref, type(exc).__name__, exc, exc_info=exc)
    return f"internal server error (reference {ref} in the server log); the request itself may be fine"


def _abort(context: grpc.ServicerContext, exc: BaseException) -> None:
    code = status_for(exc)
    if code == grpc.StatusCode.DATA_LOSS:
        log.error("%s: %s", code.name, exc, exc_info=exc)
    context.abort(code, client_message(exc))


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
