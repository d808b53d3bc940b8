"""Request body size limits: an oversized body is refused with 413 before it is read into memory.

Without a limit, uvicorn hands the app any body a client sends, and FastAPI reads the whole of it to
parse JSON, so one 1 GB POST is 1 GB of server memory. Checked as ASGI middleware, so no route can
forget it: a declared Content-Length over the limit is refused before a byte is read, and a body
without one (chunked) is counted as it arrives and refused as soon as it passes the limit.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cgchat.api.errors import error_response

MiB = 1024 * 1024
DEFAULT_LIMIT = 1 * MiB  # chat and everything else: a 10,000-character question is < 60 KB of JSON
# Path prefix → limit, first match wins. Search takes a reference picture of up to 20 MB as base64
# (SearchBody.image_base64, 28 MB of text); the web app's uploads are capped by Gradio at 25 MB.
PATH_LIMITS: tuple[tuple[str, int], ...] = (("/v1/search", 30 * MiB), ("/ui", 30 * MiB))


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a body passes its limit; an HTTPException, so FastAPI's body
    parsing lets it through (it turns other exceptions into a 400) and its handler answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"request body is larger than this endpoint accepts ({limit:,} bytes); send less"
        )


def limit_for(path: str) -> int:
    return next((limit for prefix, limit in PATH_LIMITS if path.startswith(prefix)), DEFAULT_LIMIT)


class BodySizeLimit:
    """Pure ASGI middleware (not BaseHTTPMiddleware), so streaming responses pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(limit)(scope, receive, send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:  # read outside FastAPI's handlers (another middleware, a mounted app)
            if started:
                raise
            await _too_large(limit)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # uvicorn (h11/httptools) refuses a malformed Content-Length before we see it
    return None


def _too_large(limit: int) -> JSONResponse:
    response = error_response(413, "request_too_large", str(BodyTooLarge(limit).detail))
    response.headers["Connection"] = "close"  # the rest of the body is not read; don't reuse the socket
    return response


def install_limits(app: FastAPI) -> None:
    app.add_middleware(BodySizeLimit)

    @app.exception_handler(BodyTooLarge)
    async def _body_too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return error_response(413, "request_too_large", str(exc.detail))
