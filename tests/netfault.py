"""A real network fault on loopback: a TCP proxy in front of a server that cuts the
connections it carries once, after a given number of bytes from the server."""
from __future__ import annotations

import socket
import threading


class CuttingProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port``. After :meth:`arm`, the
    connections open at that time are cut (both ends closed, as a dropped link or a restarted
    load balancer does) once ``after_bytes`` more bytes have gone from the server to the
    client; later connections pass untouched."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._budget: int | None = None
        self._open: list[tuple[socket.socket, socket.socket]] = []
        self.cuts = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, after_bytes: int) -> None:
        with self._lock:
            self._budget = after_bytes

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            pair = (client, server)
            with self._lock:
                self._open.append(pair)
            threading.Thread(target=self._pipe, args=(client, server, False, pair), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True, pair), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, from_server: bool, pair) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if from_server:
                    with self._lock:
                        if self._budget is not None:
                            self._budget -= len(data)
                            if self._budget <= 0:
                                self._budget = None
                                self.cuts += 1
                                self._cut(pair)
                                return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._cut(pair)

    @staticmethod
    def _cut(pair) -> None:
        for s in pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for pair in self._open:
                self._cut(pair)
