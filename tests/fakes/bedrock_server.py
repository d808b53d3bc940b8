"""A local, scriptable stand-in for Bedrock Runtime's ConverseStream endpoint.

It speaks real HTTP and real AWS event-stream framing (prelude + CRCs, typed headers, JSON
payloads shaped like botocore's bedrock-runtime service model), so the provider under test runs
the genuine boto3 code path: SigV4 signing, retries, response parsing, CRC validation. Nothing in
the provider or botocore is mocked; only the far end of the socket is fake.

Each request pops one *script* (a list of steps) from a queue; when the queue runs dry the last
script repeats, which is how a test says "throttle forever". Steps:

    ("start",)                              messageStart {"role": "assistant"}
    ("text", "Hel")                         contentBlockDelta with delta.text
    ("block_stop",)                         contentBlockStop
    ("stop", "end_turn")                    messageStop
    ("usage", 10, 5)                        metadata with usage + metrics
    ("exception", "throttlingException", "slow down")   in-stream exception message
    ("http_error", 429, "ThrottlingException"[, "msg"])  HTTP error instead of a stream (first step)
    ("bad_crc", "text")                     a contentBlockDelta whose message CRC is wrong
    ("partial", "text")                     the first half of a contentBlockDelta message (a cut frame)
    ("drop",)                               close the connection mid-stream (no final chunk)
    ("reset",)                              abort the connection with a TCP RST mid-stream
    ("sleep", 0.5)                          pause; as the first step it delays the response headers
"""

from __future__ import annotations

import json
import struct
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from tests.fakes.scripted_http import ChunkedHandler, Script, ScriptedFake, Step

_STRING_HEADER = 7  # event-stream header value type: UTF-8 string with a uint16 length


# --- event-stream framing --------------------------------------------------------------------


def _encode_headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack("!B", len(raw_name)) + raw_name
        out += struct.pack("!BH", _STRING_HEADER, len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: dict[str, str], payload: bytes, *, corrupt_crc: bool = False) -> bytes:
    """One event-stream message: prelude (total len, headers len, CRC), headers, payload, CRC."""
    raw_headers = _encode_headers(headers)
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(raw_headers))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    body = prelude + raw_headers + payload
    crc = zlib.crc32(body) ^ (0xFFFFFFFF if corrupt_crc else 0)
    return body + struct.pack("!I", crc)


def event_message(event_type: str, body: dict[str, Any], *, corrupt_crc: bool = False) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, json.dumps(body).encode(), corrupt_crc=corrupt_crc)


def exception_message(exception_type: str, message: str) -> bytes:
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_message(headers, json.dumps({"message": message}).encode())


def _step_message(step: Step) -> bytes:
    """The bytes for one streaming step (shapes follow ConverseStreamOutput in service-2.json)."""
    kind = step[0]
    if kind == "start":
        return event_message("messageStart", {"role": "assistant"})
    if kind in ("text", "bad_crc"):
        body = {"contentBlockIndex": 0, "delta": {"text": step[1]}}
        return event_message("contentBlockDelta", body, corrupt_crc=kind == "bad_crc")
    if kind == "block_stop":
        return event_message("contentBlockStop", {"contentBlockIndex": 0})
    if kind == "stop":
        return event_message("messageStop", {"stopReason": step[1]})
    if kind == "usage":
        usage = {"inputTokens": step[1], "outputTokens": step[2], "totalTokens": step[1] + step[2]}
        return event_message("metadata", {"usage": usage, "metrics": {"latencyMs": 42}})
    if kind == "exception":
        return exception_message(step[1], step[2])
    raise ValueError(f"unknown script step {step!r}")


def reply(*chunks: str, input_tokens: int = 10, output_tokens: int = 5, stop: str = "end_turn") -> Script:
    """A complete, well-formed answer in Bedrock's real event order (metadata comes last)."""
    return [
        ("start",),
        *(("text", c) for c in chunks),
        ("block_stop",),
        ("stop", stop),
        ("usage", input_tokens, output_tokens),
    ]


# --- HTTP server ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    model_id: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]


class _Handler(ChunkedHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        model_id = self._model_id()
        self.server.fake.record(
            RecordedRequest(
                method="POST",
                path=self.path,
                model_id=model_id or "",
                headers={k.lower(): v for k, v in self.headers.items()},
                body=json.loads(body or b"{}"),
            )
        )
        if model_id is None:
            self._send_error(404, "UnknownOperationException", f"no route for {self.path}")
            return
        self._play(self.server.fake.next_script(body))

    def _model_id(self) -> str | None:
        parts = self.path.split("?")[0].split("/")
        if len(parts) == 4 and parts[1] == "model" and parts[3] == "converse-stream":
            return unquote(parts[2])
        return None

    def _send_error(self, status: int, error_type: str, message: str) -> None:
        payload = json.dumps({"message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-ErrorType", error_type)
        self.send_header("x-amzn-RequestId", "fake-request-id")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _play(self, script: Script) -> None:
        steps = deque(script)
        while steps and steps[0][0] == "sleep":  # delay before the response headers
            self.server.fake.sleep(steps.popleft()[1])
        if steps and steps[0][0] == "http_error":
            _, status, error_type, *message = steps.popleft()
            self._send_error(status, error_type, message[0] if message else f"{error_type} (fake)")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-amzn-RequestId", "fake-request-id")
        self.end_headers()
        for step in steps:
            if step[0] == "sleep":
                self.server.fake.sleep(step[1])
            elif step[0] == "drop":
                self.drop()
                return
            elif step[0] == "reset":
                self.reset()
                return
            elif step[0] == "partial":
                message = _step_message(("text", step[1]))
                self.write_chunk(message[: len(message) // 2])
            else:
                self.write_chunk(_step_message(step))
        self.end_chunks()


class FakeBedrock(ScriptedFake):
    """Scripted responses in, recorded requests out. Use ``running()`` to serve on 127.0.0.1."""

    handler = _Handler
    base_path = ""

    def __init__(self) -> None:
        super().__init__(when_nothing_scripted=[("http_error", 500, "InternalServerException", "fake: nothing scripted")])
