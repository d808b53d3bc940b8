"""The web UI's view of the HTTP API: the same calls any client makes (the UI is a client, not a second
implementation). Errors come back as ApiError with the server's own message, for the UI to show."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


class ApiError(RuntimeError):
    """The API refused or failed a call; ``str(exc)`` is a sentence for the user."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class SseEvent:
    name: str
    data: dict[str, Any]


_pools: dict[str, httpx.Client] = {}
_pools_lock = threading.Lock()


def _pool(base_url: str, timeout: float) -> httpx.Client:
    """One keep-alive connection pool per API for the whole UI process: every page action makes an
    ApiClient, and a client (with its sockets) each time would leak them until garbage collection.
    Tokens go per request, never on the pool; the API sets no cookies, so nothing passes between users."""
    with _pools_lock:
        if base_url not in _pools:
            _pools[base_url] = httpx.Client(base_url=base_url, timeout=timeout)
        return _pools[base_url]


class ApiClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 120.0):
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = _pool(self.base_url, timeout)

    def config(self) -> dict[str, Any]:
        return self._json("GET", "/v1/config")

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/v1/search", json=body)

    def asset(self, asset_id: int) -> dict[str, Any]:
        return self._json("GET", f"/v1/assets/{asset_id}")

    def thumbnail(self, url: str) -> bytes | None:
        """Bytes of a thumbnail URL as the API gives it (``/v1/assets/ID/thumbnail?t=...``); None if it has none."""
        try:
            response = self._http.get(url, headers=self._headers, follow_redirects=True)
        except httpx.HTTPError:
            return None
        return response.content if response.status_code == 200 else None

    def sessions(self) -> list[dict[str, Any]]:
        return self._json("GET", "/v1/sessions")["sessions"]

    def session(self, session_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/sessions/{session_id}")

    def delete_session(self, session_id: str) -> None:
        self._call("DELETE", f"/v1/sessions/{session_id}")

    def chat_stream(self, question: str, session_id: str | None) -> Iterator[SseEvent]:
        """The SSE events of one chat turn, as they arrive."""
        body = {"query": question, **({"session_id": session_id} if session_id else {})}
        try:
            with self._http.stream("POST", "/v1/chat/stream", json=body, headers=self._headers) as response:
                if response.status_code != 200:
                    response.read()
                    raise ApiError(_message(response), response.status_code)
                yield from _parse_sse(response.iter_lines())
        except httpx.HTTPError as exc:
            raise ApiError(f"the server cannot be reached ({exc.__class__.__name__}); is `cgchat serve` running?") from exc

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._call(method, path, **kwargs).json()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, headers=self._headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(f"the server cannot be reached ({exc.__class__.__name__}); is `cgchat serve` running?") from exc
        if response.status_code >= 400:
            raise ApiError(_message(response), response.status_code)
        return response


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"the server answered {response.status_code}"


def _parse_sse(lines: Iterator[str]) -> Iterator[SseEvent]:
    name, data = "", []
    for line in lines:
        if not line:
            if name and data:
                yield SseEvent(name, json.loads("\n".join(data)))
            name, data = "", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    if name and data:
        yield SseEvent(name, json.loads("\n".join(data)))
