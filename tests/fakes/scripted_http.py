"""What the scripted protocol fakes (Bedrock, OpenAI) share: a queue of scripts, recorded requests,
a threaded HTTP/1.1 server on 127.0.0.1, and chunked-body writing that can also drop the connection.

Each request pops one script; when the queue runs dry the last script repeats, which is how a test
says "throttle forever". A fake subclasses ScriptedFake and names its request handler.
"""

from __future__ import annotations

import socket
import threading
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
        self._last: Script = when_nothing_scripted
        self.requests: list[Any] = []
        self.url = ""

    def enqueue(self, *scripts: Script) -> None:
        with self._lock:
            self._scripts.extend(scripts)

    def next_script(self) -> Script:
        with self._lock:
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


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    fake: ScriptedFake

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up mid-answer are expected here
