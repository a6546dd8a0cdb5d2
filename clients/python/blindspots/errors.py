"""Exceptions the SDK raises: each carries the server's status code and message."""
from __future__ import annotations

import grpc


class BlindspotsError(Exception):
    """A call failed; ``code`` is the gRPC status, ``details`` the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class InvalidArgumentError(BlindspotsError):
    pass


class InvalidParameterError(ValueError):
    """An SDK call got a parameter it does not take (raised before anything is sent)."""


class NotFoundError(BlindspotsError):
    pass


class FailedPreconditionError(BlindspotsError):
    pass


class PermissionDeniedError(BlindspotsError):
    pass


class UnauthenticatedError(BlindspotsError):
    pass


class UnavailableError(BlindspotsError):
    pass


class JobFailedError(BlindspotsError):
    """A diagnosis or index job ended FAILED or CANCELLED."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
}


def from_rpc_error(err: grpc.RpcError) -> BlindspotsError:
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    return _BY_CODE.get(code, BlindspotsError)(code, details or "")
