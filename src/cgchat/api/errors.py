"""One JSON error shape for every failure: {"error": {"code", "message"}}, never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cgchat.api.schemas import document_errors
from cgchat.db import DatabaseUnavailable
from cgchat.search import SearchError, VisualModelMissing

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}})


def install_error_handlers(app: FastAPI) -> None:
    _document_errors(app)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {e.get('msg', 'invalid')}")
        return error_response(422, "invalid_request", "; ".join(problems) or "invalid request")

    @app.exception_handler(SearchError)
    async def _bad_search(_: Request, exc: SearchError) -> JSONResponse:
        return error_response(400, "invalid_search", str(exc))

    @app.exception_handler(VisualModelMissing)
    async def _no_visual_model(_: Request, exc: VisualModelMissing) -> JSONResponse:
        return error_response(503, "visual_model_not_installed", str(exc))

    @app.exception_handler(DatabaseUnavailable)
    async def _db_down(_: Request, exc: DatabaseUnavailable) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return error_response(503, "database_unavailable", "the asset database is unavailable; retry shortly")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; the server log has details")


def _document_errors(app: FastAPI) -> None:
    """The OpenAPI document declares these handlers' responses (schemas.document_errors), so clients and
    the schema fuzzer (tests/test_fuzz_api.py) see the errors the API really answers."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from cgchat.api.auth import OPEN_PATHS, OPEN_PREFIXES

            app.openapi_schema = document_errors(
                build(), lambda path: path not in OPEN_PATHS and not path.startswith(OPEN_PREFIXES))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
