"""The FastAPI application: /healthz and /v1/search (chat joins in the chat issue)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import Depends, FastAPI, Request
from psycopg_pool import ConnectionPool, PoolTimeout

from cgchat import __version__
from cgchat.api.errors import install_error_handlers
from cgchat.api.schemas import Health, SearchBody, SearchReply
from cgchat.db import DatabaseUnavailable, database_url, migrate
from cgchat.db.connection import configure
from cgchat.models.text_encoder import get_text_encoder
from cgchat.search import Filters, SearchRequest, search
from cgchat.settings import get_settings

log = logging.getLogger(__name__)


def create_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = database_url()
        migrate(url)
        pool = ConnectionPool(
            url, min_size=1, max_size=get_settings().db_pool_max, configure=configure, open=True,
            kwargs={"row_factory": psycopg.rows.dict_row}, check=ConnectionPool.check_connection, timeout=10,
        )
        app.state.pool = pool
        get_text_encoder()  # load now, so the first request doesn't pay for it
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(title="cgchat", version=__version__, lifespan=lifespan,
                  description="Search and chat over a CG studio's asset library.")
    install_error_handlers(app)

    def connection(request: Request):  # noqa: ANN202 - a generator dependency
        try:
            with request.app.state.pool.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    @app.get("/healthz", response_model=Health)
    def healthz(request: Request) -> Health:
        model = get_text_encoder().model_id
        try:
            with request.app.state.pool.connection(timeout=2) as conn:
                assets = conn.execute("SELECT count(*) AS n FROM files WHERE status = 'indexed'").fetchone()["n"]
            return Health(status="ok", database=True, assets=assets, text_model=model)
        except (PoolTimeout, psycopg.Error):
            return Health(status="degraded", database=False, text_model=model)

    @app.post("/v1/search", response_model=SearchReply)
    def search_assets(body: SearchBody, conn: psycopg.Connection = Depends(connection)) -> SearchReply:
        types = [body.type] if isinstance(body.type, str) else (body.type or [])
        filters = Filters(
            asset_types=list(types), engines=list(body.engine or []), resolution=body.resolution, fps=body.fps,
            min_duration_s=body.min_duration_s, max_duration_s=body.max_duration_s,
            extensions=list(body.extension or []),
        )
        request = SearchRequest(body.query, body.mode, filters, body.limit, body.auto_filters)
        response = search(conn, request)
        return SearchReply(
            query=response.query, mode=response.mode, filters=response.filters.as_dict(),
            results=[r.as_dict() for r in response.results],
        )

    return app
