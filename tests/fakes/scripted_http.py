"""What the scripted protocol fakes (Bedrock, OpenAI) share: a queue of scripts, recorded requests,
a threaded HTTP/1.1 server on 127.0.0.1, and chunked-body writing that can also drop the connection.

Each request pops one script; when the queue runs dry the last script repeats, which is how a test
says "throttle forever". A fake subclasses ScriptedFake and names its request handler.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

Step = tuple[Any, ...]
Script = list[Step]


class ScriptedFake:
    handler: ClassVar[type[BaseHTTPRequestHandler]]
    base_path: ClassVar[str] = ""  # appended to the server address to form ``url``

    def __init__(self, when_nothing_scripted: Script) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._scripts: deque[Script] = deque()
        self._routes: dict[bytes, Script] = {}
        self._last: Script = when_nothing_scripted
        self.requests: list[Any] = []
        self.url = ""

    def enqueue(self, *scripts: Script) -> None:
        with self._lock:
            self._scripts.extend(scripts)

    def route(self, marker: str, script: Script) -> None:
        """Every request whose body contains ``marker`` gets ``script``, whatever the queue holds: tells
        concurrent requests (and their retries) apart."""
        with self._lock:
            self._routes[marker.encode()] = script

    def next_script(self, body: bytes = b"") -> Script:
        with self._lock:
            for marker, script in self._routes.items():
                if marker in body:
                    return script
            if self._scripts:
                self._last = self._scripts.popleft()
            return self._last

    def record(self, request: Any) -> None:
        with self._lock:
            self.requests.append(request)

    def sleep(self, seconds: float) -> None:
        """Interruptible, so that shutting the server down never waits out a scripted stall."""
        self._stopping.wait(seconds)

    @contextmanager
    def running(self) -> Iterator[Any]:
        server = QuietServer(("127.0.0.1", 0), self.handler)
        server.fake = self
        self.url = f"http://127.0.0.1:{server.server_address[1]}{self.base_path}"
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stopping.set()
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


class ChunkedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive + chunked bodies, like the real endpoints
    server: QuietServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def drop(self) -> None:
        """End the TCP connection without the terminating chunk, as a crashed server or a dead load
        balancer would."""
        self.close_connection = True
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)

    def reset(self) -> None:
        """Abort the TCP connection with a RST (SO_LINGER 0), as a load balancer killing a stream does:
        the client's next read fails with ECONNRESET instead of seeing an end of stream."""
        self.close_connection = True
        self.wfile.flush()
        self._wait_sent()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def _wait_sent(self, limit_s: float = 2.0) -> None:
        """Wait until the bytes already written have left the send queue: a RST discards unsent data, and
        the client must see what came before the reset (on a busy machine small writes linger, corked)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            unsent = struct.unpack("i", fcntl.ioctl(self.connection.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
            if unsent == 0:
                return
            time.sleep(0.005)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    fake: ScriptedFake

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up mid-answer are expected here
