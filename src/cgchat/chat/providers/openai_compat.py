"""Any OpenAI-compatible chat server (Ollama, vLLM, llama.cpp server, ...) behind LLMProvider.

We speak the streaming ``POST {base_url}/chat/completions`` protocol with plain httpx instead of
the ``openai`` SDK: it is one endpoint, the SDK's own retries would stack on ours, and the local
servers differ from OpenAI in small ways (error body shapes, usage chunks) that are easier to
tolerate here.

Retry policy (same split as BedrockProvider):

* Before the first text nobody has seen anything, so failures that may pass (connection refused,
  HTTP 408/429/5xx, a stream that drops or carries an error object) replay the whole request with
  exponential backoff + jitter, up to ``max_attempts`` requests in all.
* Timeouts are *not* replayed: the caller has already waited ``connect_timeout``/``read_timeout``
  (a local server loading a large model can take minutes) and replaying would multiply that wait.
* Once text has been yielded we never retry; we raise ``ProviderError(after_tokens=True)`` and the
  pipeline decides what to show.

The API key is only ever put in the Authorization header; it is never logged or put in messages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from cgchat.chat.providers.base import (
    ChatMessage,
    GenerationParams,
    ProviderError,
    ProviderEvent,
    Stop,
    TextDelta,
    Usage,
)
from cgchat.chat.providers.retry import RetryBeforeText, stream_with_retries

log = logging.getLogger(__name__)

# OpenAI finish_reason -> our Stop.reason vocabulary (see base.Stop); anything else passes as-is.
_FINISH_REASONS = {"stop": "end_turn", "length": "max_tokens", "content_filter": "content_filtered"}
# HTTP statuses for which "try again shortly" is sound advice.
_RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
_DETAIL_LIMIT = 300  # characters of a non-JSON error body worth showing


@dataclass(slots=True)
class _StreamState:
    """What one response has told us so far; decides whether an early end is an error."""

    yielded_text: bool = False
    finish_reason: str | None = None
    usage: Usage | None = None
    done: bool = False  # saw ``data: [DONE]``

    @property
    def complete(self) -> bool:
        return self.done or self.finish_reason is not None


class OpenAICompatProvider:
    """Streams chat completions from an OpenAI-compatible server (see module docstring)."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        max_attempts: int = 3,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 8.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        client: httpx.Client | None = None,
    ):
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_attempts = max_attempts
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        # read_timeout bounds each wait for bytes (headers, then every chunk), not the whole answer.
        self.timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._headers = {"Accept": "text/event-stream"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        # One client per provider: it holds the keep-alive pool and is safe to share across threads.
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=self.timeout)

    def __repr__(self) -> str:  # deliberately without the API key
        return f"OpenAICompatProvider(base_url={self.base_url!r}, model={self.model!r})"

    def close(self) -> None:
        """Release pooled connections (only if we created the client)."""
        if self._owns_client:
            self._client.close()

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    # --- streaming --------------------------------------------------------------------------

    def stream(
        self, system: str, messages: list[ChatMessage], params: GenerationParams
    ) -> Iterator[ProviderEvent]:
        """Yield TextDelta*, then Usage (if the server sent one), then one Stop; or raise ProviderError."""
        body = self._request_body(system, messages, params)
        return stream_with_retries(
            lambda: self._stream_once(body), max_attempts=self.max_attempts, base_delay=self.retry_base_delay,
            max_delay=self.retry_max_delay, who=self.url,
        )


    def _request_body(
        self, system: str, messages: list[ChatMessage], params: GenerationParams
    ) -> dict[str, Any]:
        chat = [{"role": m.role, "content": m.content} for m in messages]
        if system:  # some servers (llama.cpp templates) choke on an empty system turn
            chat.insert(0, {"role": "system", "content": system})
        body: dict[str, Any] = {
            "model": self.model,
            "messages": chat,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:  # an empty list is rejected by some servers
            body["stop"] = list(params.stop)
        return body

    def _stream_once(self, body: dict[str, Any]) -> Iterator[ProviderEvent]:
        """One HTTP request. Raises RetryBeforeText when replaying is safe, else ProviderError."""
        state = _StreamState()
        try:
            # The with-block also closes the response when the consumer abandons the generator,
            # so the server stops generating tokens nobody will read.
            with self._client.stream(
                "POST", self.url, json=body, headers=self._headers, timeout=self.timeout
            ) as response:
                if response.status_code != 200:
                    response.read()
                    raise self._http_error(response)
                yield from self._events(response, state)
        except httpx.TimeoutException as exc:
            if not state.complete:
                raise self._timeout_error(exc, state.yielded_text) from exc
        except httpx.TransportError as exc:  # refused, reset, dropped mid-chunk, bad framing
            if not state.complete:  # after finish_reason the answer is whole; only usage is lost
                raise _failure(
                    "ConnectionError", f"{self.url}: {_describe(exc)}", state.yielded_text
                ) from exc
        if not state.complete:
            raise _failure(
                "StreamIncomplete",
                f"{self.url} ended the stream before the answer was complete",
                state.yielded_text,
            )
        if state.usage is not None:
            yield state.usage
        yield Stop(_stop_reason(state.finish_reason))

    def _events(self, response: httpx.Response, state: _StreamState) -> Iterator[TextDelta]:
        """Parse SSE lines (iter_lines reassembles lines split across network chunks)."""
        for line in response.iter_lines():
            payload = _sse_data(line)
            if payload is None:
                continue
            if payload == "[DONE]":
                state.done = True
                return
            chunk = self._decode(payload, state)
            text = self._apply_chunk(chunk, state)
            if text:
                state.yielded_text = True
                yield TextDelta(text)

    def _decode(self, payload: str, state: _StreamState) -> dict[str, Any]:
        try:
            chunk = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise _failure(
                "BadResponse",
                f"{self.url} sent a malformed stream chunk: {payload[:100]!r}",
                state.yielded_text,
            ) from exc
        if not isinstance(chunk, dict):
            raise _failure("BadResponse", f"{self.url} sent a non-object stream chunk", state.yielded_text)
        return chunk

    def _apply_chunk(self, chunk: dict[str, Any], state: _StreamState) -> str | None:
        """Fold one chunk into ``state``; return its text, if any. An error object ends the stream."""
        if chunk.get("error"):
            detail = _error_detail(chunk)
            raise _failure(
                "StreamError", f"{self.url} reported an error mid-stream: {detail}", state.yielded_text
            )
        if isinstance(chunk.get("usage"), dict):  # null in every chunk but the last, when present
            state.usage = _usage(chunk["usage"])
        choices = chunk.get("choices") or []
        if not choices:
            return None
        choice = choices[0]
        if choice.get("finish_reason"):
            state.finish_reason = choice["finish_reason"]
        content = (choice.get("delta") or {}).get("content")
        return content if isinstance(content, str) else None

    # --- errors -----------------------------------------------------------------------------

    def _http_error(self, response: httpx.Response) -> Exception:
        """Map a non-200 response to a retry (transient) or a ProviderError with an actionable message."""
        status = response.status_code
        detail = (
            _error_detail(_json_or_none(response))
            or response.text[:_DETAIL_LIMIT].strip()
            or response.reason_phrase
        )
        if status in _RETRYABLE_STATUSES or status >= 500:
            code = "RateLimited" if status == 429 else f"HTTP{status}"
            return RetryBeforeText(code, f"HTTP {status}: {detail}")
        key_note = "" if "Authorization" in self._headers else " (none was configured)"
        messages = {
            400: ("BadRequest", f"{self.base_url} rejected the request for model {self.model}: {detail}"),
            401: ("Unauthorized", f"{self.base_url} rejected the API key{key_note}: {detail}"),
            403: ("Forbidden", f"{self.base_url} refused access to model {self.model}: {detail}"),
            404: (
                "NotFound",
                f"model {self.model} not found at {self.base_url} (or no OpenAI-compatible API there): {detail}",
            ),
        }
        code, message = messages.get(
            status, (f"HTTP{status}", f"{self.base_url} answered HTTP {status}: {detail}")
        )
        return ProviderError(code, message, retryable=False)

    def _timeout_error(self, exc: httpx.TimeoutException, yielded_text: bool) -> ProviderError:
        """Not replayed (see module docstring): we already waited the full timeout once."""
        if isinstance(exc, httpx.ConnectTimeout):
            what = f"connecting to {self.base_url} took longer than {self.timeout.connect}s"
        else:
            what = f"{self.url} sent nothing for {self.timeout.read}s"
        return ProviderError("Timeout", what, retryable=True, after_tokens=yielded_text)


def _failure(code: str, message: str, yielded_text: bool) -> Exception:
    """A transient failure: replay if nothing was shown yet, otherwise report it as after_tokens."""
    if not yielded_text:
        return RetryBeforeText(code, message)
    return ProviderError(code, f"stream failed mid-answer: {message}", retryable=True, after_tokens=True)


def _stop_reason(finish_reason: str | None) -> str:
    """[DONE] without a finish_reason (some llama.cpp builds) is a normal end."""
    if finish_reason is None:
        return "end_turn"
    return _FINISH_REASONS.get(finish_reason, finish_reason)


def _sse_data(line: str) -> str | None:
    """The payload of a ``data:`` line; None for blank lines, ``:`` comments and other SSE fields."""
    if not line.startswith("data:"):
        return None
    return line[5:].strip()


def _usage(usage: dict[str, Any]) -> Usage:
    return Usage(input_tokens=usage.get("prompt_tokens"), output_tokens=usage.get("completion_tokens"))


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_detail(body: Any) -> str:
    """The human message of an error body, across servers: OpenAI/vLLM ``{"error": {"message"}}``,
    Ollama ``{"error": "..."}``, vLLM/FastAPI ``{"message"}`` / ``{"detail"}``."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or error)
    if isinstance(error, str):
        return error
    for key in ("message", "detail"):
        if body.get(key):
            return str(body[key])
    return ""


def _describe(exc: httpx.TransportError) -> str:
    """httpx messages can be empty (e.g. a bare RemoteProtocolError); always name the type."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
