"""One place that knows grpc's four handler kinds, for the interceptors."""
from __future__ import annotations

from typing import Callable

import grpc

# wrap(behaviour, streaming_request) -> behaviour
Wrapper = Callable[[Callable, bool], Callable]


def wrap_handler(handler: grpc.RpcMethodHandler, unary_response: Wrapper,
                 stream_response: Wrapper) -> grpc.RpcMethodHandler:
    """The handler with its behaviour wrapped: ``unary_response`` for RPCs answering one
    message, ``stream_response`` for server-streaming ones; the flag says whether the
    request is a stream."""
    if handler.unary_unary:
        return handler._replace(unary_unary=unary_response(handler.unary_unary, False))
    if handler.stream_unary:
        return handler._replace(stream_unary=unary_response(handler.stream_unary, True))
    if handler.unary_stream:
        return handler._replace(unary_stream=stream_response(handler.unary_stream, False))
    if handler.stream_stream:
        return handler._replace(stream_stream=stream_response(handler.stream_stream, True))
    return handler
