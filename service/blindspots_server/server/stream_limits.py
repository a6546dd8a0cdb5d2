"""Client streams that cannot starve the server.

The server answers RPCs from a bounded thread pool, and a client-streaming RPC
(ingest) holds its thread while it waits for the client's next message. So a
few clients that open streams and send nothing could hold every thread, and
health checks and every other call would queue behind them. Two bounds stop
that, in one interceptor:

- **Open streams** are capped in all and per peer address (below the thread
  pool's size, so threads stay free for unary calls and health checks). A
  stream over the cap is refused at once with RESOURCE_EXHAUSTED and a
  ``grpc-retry-pushback-ms`` trailer, which the SDK honours by retrying later.
- **Waiting** is timed: a stream whose client sends no first message within
  ``first_message_s``, or no next message within ``idle_s`` while the server
  waits for one, is closed with DEADLINE_EXCEEDED. Time the server spends on a
  batch it received does not count.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import grpc

from .errors import ResourceExhausted
from .handler_wrapping import wrap_handler

log = logging.getLogger("blindspots.server")
PUSHBACK_MS = 500


@dataclass
class _Watched:
    context: grpc.ServicerContext
    waiting_since: Optional[float]      # set while the handler waits for the client's next message
    received: int = 0
    closed: bool = False


def _peer_address(context: grpc.ServicerContext) -> str:
    """``ipv4:1.2.3.4:5678`` -> ``1.2.3.4``; ``ipv6:[::1]:5678`` -> ``::1``."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition("]")[0].lstrip("[") or rest
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    return peer


def _close_with(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> None:
    """End the call with ``code`` from another thread; the handler's pending read then ends."""
    call = getattr(getattr(context, "_rpc_event", None), "call", None)
    try:
        from grpc._cython import cygrpc
        call.cancel(getattr(cygrpc.StatusCode, code.name.lower()), details)
    except Exception:       # another grpc build: a plain cancel still frees the thread
        context.cancel()


class StreamGuardInterceptor(grpc.ServerInterceptor):
    """Caps open client streams (total and per peer) and times out streams that go quiet."""

    def __init__(self, max_streams: int, max_streams_per_peer: int, first_message_s: float, idle_s: float,
                 clock: Callable[[], float] = time.monotonic):
        self.max_streams = max_streams
        self.max_streams_per_peer = max_streams_per_peer
        self.first_message_s = first_message_s
        self.idle_s = idle_s
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[int, _Watched] = {}
        self._per_peer: Counter[str] = Counter()
        self._ids = itertools.count()
        self._stop = threading.Event()
        self._watchdog: Optional[threading.Thread] = None

    # ------------------------------------------------------------ interceptor
    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or not handler.request_streaming:
            return handler

        def guard_unary(fn, _streaming_request):
            def call(requests, context):
                key, peer = self._admit(context)
                try:
                    return fn(self._timed(key, requests), context)
                finally:
                    self._release(key, peer)
            return call

        def guard_stream(fn, _streaming_request):
            def call(requests, context):
                key, peer = self._admit(context)
                try:
                    yield from fn(self._timed(key, requests), context)
                finally:
                    self._release(key, peer)
            return call

        return wrap_handler(handler, guard_unary, guard_stream)

    def _admit(self, context) -> tuple[int, str]:
        peer = _peer_address(context)
        with self._lock:
            total, mine = len(self._open), self._per_peer[peer]
            if total >= self.max_streams or mine >= self.max_streams_per_peer:
                context.set_trailing_metadata((("grpc-retry-pushback-ms", str(PUSHBACK_MS)),))
                limit = ("the server's" if total >= self.max_streams else "this client address's")
                raise ResourceExhausted(
                    f"too many open client streams: {limit} limit of "
                    f"{self.max_streams if total >= self.max_streams else self.max_streams_per_peer} is reached; "
                    "retry later (the SDK does)")
            key = next(self._ids)
            self._open[key] = _Watched(context, waiting_since=None)
            self._per_peer[peer] += 1
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch, name="stream-watchdog", daemon=True)
                self._watchdog.start()
        return key, peer

    def _release(self, key: int, peer: str) -> None:
        with self._lock:
            self._open.pop(key, None)
            self._per_peer[peer] -= 1
            if self._per_peer[peer] <= 0:
                del self._per_peer[peer]

    def _timed(self, key: int, requests: Iterator) -> Iterator:
        watched = self._open[key]
        while True:
            watched.waiting_since = self._clock()
            try:
                message = next(requests)
            except StopIteration:
                return
            finally:
                watched.waiting_since = None
            watched.received += 1
            yield message

    # ------------------------------------------------------------ watchdog
    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            self.expire_idle()

    def expire_idle(self) -> int:
        """Close the streams that waited too long for their client; how many were closed."""
        now = self._clock()
        expired = []
        with self._lock:
            for watched in self._open.values():
                since = watched.waiting_since
                limit = self.idle_s if watched.received else self.first_message_s
                if since is not None and not watched.closed and now - since > limit:
                    watched.closed = True
                    expired.append((watched, limit))
        for watched, limit in expired:
            what = "next message" if watched.received else "first message"
            _close_with(watched.context, grpc.StatusCode.DEADLINE_EXCEEDED,
                        f"the client sent no {what} within {limit:g} s; the server closed the "
                        f"stream ({watched.received} message(s) received and handled before it)")
        if expired:
            log.warning("closed %d client stream(s) that sent nothing for too long", len(expired))
        return len(expired)

    def open_streams(self) -> int:
        with self._lock:
            return len(self._open)

    def close(self) -> None:
        self._stop.set()
