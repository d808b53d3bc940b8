"""A loopback TCP proxy in front of PostgreSQL that can play an outage at the wire.

``down()`` closes the listening socket (new connections are refused, as when Postgres is stopped)
and, with ``cut=True``, resets every open connection (a crash or failover mid-query); ``up()``
listens again on the same port. The server under test only ever sees a TCP address.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


class TcpFaultProxy:
    def __init__(self, upstream_socket_path: str):
        self.upstream = upstream_socket_path
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def active_connections(self) -> int:
        with self._lock:
            return len(self._open) // 2

    def up(self) -> TcpFaultProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def down(self, cut: bool = True) -> None:
        if self._listener is not None:
            with suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        if cut:
            with self._lock:
                victims, self._open = list(self._open), set()
            for sock in victims:
                with suppress(OSError):  # linger 0: the close sends an RST, like a server that died
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                with suppress(OSError):  # wakes the pump thread blocked in recv(); close() alone would not
                    sock.shutdown(socket.SHUT_RDWR)
                with suppress(OSError):
                    sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX)
            try:
                server.connect(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with suppress(OSError):
                    sock.close()
            with self._lock:
                self._open.discard(source)
                self._open.discard(target)
