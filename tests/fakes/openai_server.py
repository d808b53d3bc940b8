"""A local, scriptable stand-in for an OpenAI-compatible ``POST /v1/chat/completions`` server.

It speaks real HTTP/1.1 with chunked Server-Sent Events shaped exactly like OpenAI's stream (a
role chunk, content chunks, a chunk with finish_reason, an optional usage chunk with empty
choices, ``data: [DONE]``), so the provider under test runs its genuine httpx code path. Only the
far end of the socket is fake.

Each request pops one *script* (a list of steps) from a queue; when the queue runs dry the last
script repeats, which is how a test says "fail forever". Steps:

    ("text", "Hel")                    a chunk with choices[0].delta.content
    ("finish", "stop")                 a chunk with an empty delta and finish_reason
    ("usage", 10, 5)                   a chunk with choices [] and usage{prompt,completion}_tokens
    ("done",)                          data: [DONE]
    ("error", "boom"[, "type"])        an in-stream ``data: {"error": {...}}`` chunk
    ("raw", "text")                    raw bytes as one network chunk (comments, split lines)
    ("http_error", 429, body)          HTTP error instead of a stream (first step); body is a
                                       message string (wrapped as {"error": {"message"}}), a dict
                                       (sent as JSON) or bytes (sent as-is)
    ("drop",)                          close the connection mid-stream (no final chunk)
    ("reset",)                         abort the connection with a TCP RST mid-stream
    ("sleep", 0.5)                     pause; as the first step it delays the response headers
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from tests.fakes.scripted_http import ChunkedHandler, Script, ScriptedFake, Step

CHUNK_ID = "chatcmpl-fake"
CREATED = 1_700_000_000


def reply(
    *chunks: str,
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
    finish: str = "stop",
    usage: bool = True,
) -> Script:
    """A complete, well-formed answer in OpenAI's real event order (usage after finish_reason)."""
    script: Script = [("text", c) for c in chunks]
    script.append(("finish", finish))
    if usage:
        script.append(("usage", prompt_tokens, completion_tokens))
    script.append(("done",))
    return script


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


class _Handler(ChunkedHandler):
    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.loads(raw or b"{}")
        self.server.fake.record(
            RecordedRequest("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        if self.path.split("?")[0] != "/v1/chat/completions":
            self._send_error(404, f"no route for {self.path}")
            return
        self._body = body
        self._play(self.server.fake.next_script(raw))

    # --- responses ----------------------------------------------------------------------------

    def _send_error(self, status: int, body: Any) -> None:
        if isinstance(body, str):
            body = {"error": {"message": body, "type": "invalid_request_error", "code": None}}
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _play(self, script: Script) -> None:
        steps = deque(script)
        while steps and steps[0][0] == "sleep":  # delay before the response headers
            self.server.fake.sleep(steps.popleft()[1])
        if steps and steps[0][0] == "http_error":
            _, status, body = steps.popleft()
            self._send_error(status, body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.write_chunk(self._chunk({"role": "assistant", "content": ""}))  # OpenAI's first chunk
        for step in steps:
            if step[0] == "sleep":
                self.server.fake.sleep(step[1])
            elif step[0] == "drop":
                self.drop()
                return
            elif step[0] == "reset":
                self.reset()
                return
            else:
                self.write_chunk(self._step_bytes(step))
        self.end_chunks()

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": CHUNK_ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": self._body.get("model", ""),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        if self._include_usage():  # OpenAI then sends "usage": null on every ordinary chunk
            chunk["usage"] = None
        return _sse(chunk)

    def _include_usage(self) -> bool:
        return bool((self._body.get("stream_options") or {}).get("include_usage"))

    def _step_bytes(self, step: Step) -> bytes:
        kind = step[0]
        if kind == "text":
            return self._chunk({"content": step[1]})
        if kind == "finish":
            return self._chunk({}, finish_reason=step[1])
        if kind == "usage":
            usage = {
                "prompt_tokens": step[1],
                "completion_tokens": step[2],
                "total_tokens": step[1] + step[2],
            }
            return _sse(
                {
                    "id": CHUNK_ID,
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": self._body.get("model", ""),
                    "choices": [],
                    "usage": usage,
                }
            )
        if kind == "done":
            return _sse("[DONE]")
        if kind == "error":
            error_type = step[2] if len(step) > 2 else "server_error"
            return _sse({"error": {"message": step[1], "type": error_type, "code": None}})
        if kind == "raw":
            return step[1].encode() if isinstance(step[1], str) else step[1]
        raise ValueError(f"unknown script step {step!r}")


class FakeOpenAI(ScriptedFake):
    """Scripted responses in, recorded requests out. Use ``running()`` to serve on 127.0.0.1."""

    handler = _Handler
    base_path = "/v1"

    def __init__(self) -> None:
        super().__init__(when_nothing_scripted=[("http_error", 500, "fake: nothing scripted")])
