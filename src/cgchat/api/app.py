"""The FastAPI application: health, config, search; chat, sessions and assets from api/chat_routes.py."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse

from cgchat import __version__
from cgchat.api.auth import install_auth, make_verifier
from cgchat.api.chat_routes import router as chat_router
from cgchat.api.deps import db_connection
from cgchat.api.docs import install_docs
from cgchat.api.errors import install_error_handlers
from cgchat.api.limits import install_limits
from cgchat.api.schemas import Health, SearchBody, SearchReply
from cgchat.chat.pipeline import ChatPipeline
from cgchat.chat.providers.factory import make_provider
from cgchat.chat.sessions import PostgresSessions, SessionStoreFactory
from cgchat.db import DatabaseUnavailable, database_url, migrate
from cgchat.db.embedded import release_embedded
from cgchat.db.pool import Database
from cgchat.ingest.backfill import VisualBackfill
from cgchat.models.clip_encoder import ClipNotInstalled, get_clip_encoder
from cgchat.models.text_encoder import get_text_encoder
from cgchat.search import Filters, SearchError, SearchRequest, search
from cgchat.services.s3 import S3Files
from cgchat.settings import Settings, get_settings

log = logging.getLogger(__name__)


def make_session_store(settings: Settings) -> SessionStoreFactory:
    if settings.session_store == "dynamodb":
        from cgchat.chat.sessions_dynamo import DynamoSessions

        store = DynamoSessions(settings.sessions_table, settings.aws_region, settings.dynamodb_endpoint_url,
                               settings.session_ttl_days)
        return lambda _conn: store
    return PostgresSessions


def create_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = get_settings()
        migrated = _start_database(settings)
        database = Database(settings.db_pool_max, migrated=migrated)
        app.state.database = database
        app.state.settings = settings
        app.state.sessions = make_session_store(settings)
        app.state.s3 = S3Files(settings.aws_region, settings.s3_endpoint_url, settings.s3_presign_seconds)
        app.state.chat = ChatPipeline(database.connection, make_provider(settings), app.state.sessions)
        get_text_encoder()  # load now, so the first request doesn't pay for it
        backfill = VisualBackfill(database.connection, settings.visual_backfill_poll_s).start() \
            if settings.visual_backfill else None
        try:
            yield
        finally:
            if backfill is not None:
                backfill.stop()
            database.close()
            release_embedded()

    app = FastAPI(title="cgchat", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Search and chat over a CG studio's asset library.")
    install_error_handlers(app)
    install_limits(app)
    install_docs(app)
    install_auth(app, make_verifier(get_settings()))
    app.include_router(chat_router)
    _mount_ui(app, get_settings())

    @app.get("/healthz", response_model=Health)
    def healthz(request: Request) -> Health:
        model = get_text_encoder().model_id
        try:
            with request.app.state.database.connection(timeout=2) as conn:
                assets = conn.execute("SELECT count(*) AS n FROM files WHERE status = 'indexed'").fetchone()["n"]
            return Health(status="ok", database=True, assets=assets, text_model=model, visual_model=_visual_model())
        except (DatabaseUnavailable, psycopg.Error):
            return Health(status="degraded", database=False, text_model=model, visual_model=_visual_model())

    @app.get("/v1/config")
    def config(request: Request) -> dict[str, object]:
        """What this server is running with (no secrets)."""
        chat = request.app.state.chat
        settings = request.app.state.settings
        visual_model = _visual_model()
        return {
            "version": __version__,
            "llm_provider": chat.provider.name,
            "llm_model": chat.provider.model,
            "text_model": get_text_encoder().model_id,
            "auth_mode": settings.auth_mode,
            "auth_note": "AUTH_MODE=off: every caller is the local user" if settings.auth_mode == "off"
            else "Cognito access tokens required (Authorization: Bearer ...)",
            "session_store": settings.session_store,
            "database": "external" if settings.database_url else "embedded",
            "search_modes": ["hybrid", "semantic", "keyword"] + (["visual"] if visual_model else []),
            "visual_model": visual_model,
            "visual_install": None if visual_model else "cgchat models install-clip SOURCE",
            "chat_top_k": settings.chat_top_k,
        }

    @app.post("/v1/search", response_model=SearchReply)
    def search_assets(body: SearchBody, conn: psycopg.Connection = Depends(db_connection)) -> SearchReply:
        types = [body.type] if isinstance(body.type, str) else (body.type or [])
        filters = Filters(
            asset_types=list(types), engines=list(body.engine or []), resolution=body.resolution, fps=body.fps,
            min_duration_s=body.min_duration_s, max_duration_s=body.max_duration_s,
            extensions=list(body.extension or []),
        )
        request = SearchRequest(body.query, body.mode, filters, body.limit, body.auto_filters,
                                image=_decode_image(body.image_base64), like_asset_id=body.like_asset_id)
        response = search(conn, request)
        return SearchReply(
            query=response.query, mode=response.mode, filters=response.filters.as_dict(),
            retrievers=response.retrievers, visual_model=response.visual_model,
            results=[r.as_dict() for r in response.results],
        )

    return app


def _start_database(settings: Settings) -> bool:
    """Migrate before serving; whether that worked. The embedded server is ours: failing to start it
    is fatal, with its reason. An external database may be down right now (failover, maintenance): then
    the server starts anyway, answers 503 and migrates on the first connection that works (cgchat.db.pool)."""
    try:
        migrate(database_url())
    except DatabaseUnavailable as exc:
        if settings.database_url is None and not settings.database_secret_arn:
            raise
        log.warning("starting without the database (%s); requests get 503 until it is reachable", exc)
        return False
    return True


def _mount_ui(app: FastAPI, settings: Settings) -> None:
    """The Gradio web app at /ui (and / redirects there), when enabled and installed (`ui` extra)."""
    if not settings.ui_enabled:
        return
    try:
        import gradio as gr

        from cgchat.ui.app import build_ui
    except ImportError:
        log.info("web UI not installed (pip install 'cgchat[ui]'); serving the API only")
        return
    # The page is open (auth is checked by the API it calls), so cap what an anonymous upload may cost.
    gr.mount_gradio_app(app, build_ui(settings.ui_api_url), path="/ui", footer_links=[], max_file_size="25mb")

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui/")


def _visual_model() -> str | None:
    try:
        return get_clip_encoder().model_id
    except ClipNotInstalled:
        return None


def _decode_image(data: str | None) -> bytes | None:
    """A base64 picture (optionally a data: URL, as browsers produce) to bytes."""
    if data is None:
        return None
    payload = data.split(",", 1)[1] if data.startswith("data:") and "," in data else data
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SearchError(f"image_base64 is not valid base64: {exc}") from exc
