"""Chat, sessions, assets and config endpoints."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from cgchat.api.deps import db_connection
from cgchat.api.schemas import AssetDetail, ChatReply, SessionHistory, SessionList, error_responses
from cgchat.api.sse import in_stream_thread, sse_response
from cgchat.chat import stream_models as sm
from cgchat.chat.pipeline import ChatPipeline, ChatTurn
from cgchat.chat.sessions import SessionNotFound

router = APIRouter()
MAX_QUESTION = 10_000
_SSE: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {}}}}
_REDIRECT: dict[int | str, dict[str, Any]] = {302: {"description": "S3 assets: a presigned URL to fetch it."}}


def _doc(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """Declare the 200 body in the OpenAPI schema without filtering what the route returns through it
    (tests/test_fuzz_api.py checks every response against the declaration)."""
    return {200: {"model": model}}


_BYTES = {"schema": {"type": "string", "format": "binary"}}
_FILE: dict[int | str, dict[str, Any]] = {200: {"description": "The file's bytes, as its own MIME type.",
                                                "content": {"*/*": _BYTES}}}
_THUMBNAIL: dict[int | str, dict[str, Any]] = {200: {"description": "A JPEG or PNG preview.",
                                                     "content": {"image/*": _BYTES}}}


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # as the schema says: true is not a number

    query: str = Field(min_length=1, max_length=MAX_QUESTION - 1, description="The question, in words.")
    session_id: str | None = Field(default=None, max_length=64, description="Continue this session.")
    top_k: int | None = Field(default=None, ge=1, le=50, description="Sources to retrieve.")


class LegacyChatBody(BaseModel):
    model_config = ConfigDict(strict=True)

    query: str = Field(min_length=1, max_length=MAX_QUESTION - 1)


def owner(request: Request) -> str:
    """The caller's identity (Cognito ``sub``); "local" while AUTH_MODE=off."""
    return getattr(request.state, "principal_sub", "local")


def pipeline(request: Request) -> ChatPipeline:
    return request.app.state.chat


async def _prepared(body: ChatBody, request: Request, who: str) -> Any:
    question = body.query.strip()
    if not question:
        raise HTTPException(400, "query is empty; type a question")
    if "\x00" in question:
        raise HTTPException(400, "query contains a NUL character; send plain text")
    turn = ChatTurn(question=question, owner=who, session_id=body.session_id,
                    top_k=body.top_k or request.app.state.settings.chat_top_k, request_id=str(uuid.uuid4()))
    try:
        return await run_in_threadpool(pipeline(request).prepare, turn)
    except SessionNotFound as exc:
        raise HTTPException(404, f"no session {exc.args[0]!r} for this user; omit session_id to start one") from exc


@router.post("/v1/chat/stream", response_class=Response, responses={**_SSE, **error_responses(404)})
async def chat_stream(body: ChatBody, request: Request, who: str = Depends(owner)) -> Response:
    """Answer as Server-Sent Events: meta, sources, token/citation..., usage, error?, done."""
    prepared = await _prepared(body, request, who)
    return sse_response(pipeline(request).stream(prepared), request.app.state.settings.sse_ping_seconds)


@router.post("/chat", response_class=Response, responses=_SSE)
async def chat_legacy(body: LegacyChatBody, request: Request, who: str = Depends(owner)) -> Response:
    """The original contract: {"query": ...} in, the same SSE stream out."""
    prepared = await _prepared(ChatBody(query=body.query), request, who)
    return sse_response(pipeline(request).stream(prepared), request.app.state.settings.sse_ping_seconds)


@router.post("/v1/chat", responses={**_doc(ChatReply), **error_responses(404)})
async def chat_json(body: ChatBody, request: Request, who: str = Depends(owner)) -> dict[str, Any]:
    """The same pipeline, one JSON response."""
    prepared = await _prepared(body, request, who)
    events = await in_stream_thread(lambda: list(pipeline(request).stream(prepared)))
    reply: dict[str, Any] = {"answer": "", "citations": [], "error": None}
    for event in events:
        if isinstance(event, sm.Meta):
            reply.update(event.model_dump(exclude={"event"}))
        elif isinstance(event, sm.Sources):
            reply["sources"] = [s.model_dump() for s in event.sources]
        elif isinstance(event, sm.Token):
            reply["answer"] += event.text
        elif isinstance(event, sm.Citation):
            reply["citations"].append(event.model_dump(exclude={"event"}))
        elif isinstance(event, sm.UsageInfo):
            reply["usage"] = event.model_dump(exclude={"event"})
        elif isinstance(event, sm.Error):
            reply["error"] = event.model_dump(exclude={"event"})
        elif isinstance(event, sm.Done):
            reply["finish_reason"] = event.finish_reason
    return reply


@router.get("/v1/sessions", responses=_doc(SessionList))
def list_sessions(request: Request, conn: psycopg.Connection = Depends(db_connection), who: str = Depends(owner)) -> dict[str, Any]:
    return {"sessions": request.app.state.sessions(conn).list(who)}


@router.get("/v1/sessions/{session_id}", responses={**_doc(SessionHistory), **error_responses(404)})
def get_session(session_id: str, request: Request, conn: psycopg.Connection = Depends(db_connection), who: str = Depends(owner)) -> dict[str, Any]:
    try:
        messages = request.app.state.sessions(conn).history(who, session_id)
    except SessionNotFound as exc:
        raise HTTPException(404, f"no session {session_id!r} for this user") from exc
    return {"session_id": session_id, "messages": [asdict(m) for m in messages]}


@router.delete("/v1/sessions/{session_id}", status_code=204, responses=error_responses(404))
def delete_session(session_id: str, request: Request, conn: psycopg.Connection = Depends(db_connection), who: str = Depends(owner)) -> Response:
    try:
        request.app.state.sessions(conn).delete(who, session_id)
    except SessionNotFound as exc:
        raise HTTPException(404, f"no session {session_id!r} for this user") from exc
    return Response(status_code=204)


@router.get("/v1/assets/{asset_id}", responses={**_doc(AssetDetail), **error_responses(404)})
def get_asset(asset_id: int, conn: psycopg.Connection = Depends(db_connection)) -> dict[str, Any]:
    row = _asset(conn, asset_id)
    deps = conn.execute(
        "SELECT kind, raw_path, resolved_path, name, exists FROM dependencies WHERE file_id = %s ORDER BY id", (asset_id,)
    ).fetchall()
    return {**{k: row[k] for k in ("id", "path", "name", "extension", "size_bytes", "sha256", "mime_type",
                                   "asset_type", "status", "description")},
            "metadata": row["metadata_json"], "dependencies": deps,
            "thumbnail_url": f"/v1/assets/{asset_id}/thumbnail", "file_url": f"/v1/assets/{asset_id}/file"}


@router.get("/v1/assets/{asset_id}/file", response_class=Response,
            responses={**_FILE, **_REDIRECT, **error_responses(404, 410)})
def get_asset_file(asset_id: int, request: Request, conn: psycopg.Connection = Depends(db_connection)) -> Response:
    """The file itself, found by id only: no path from the request ever reaches the file system.
    Local files are streamed; S3 assets get a 302 to a presigned URL."""
    row = _asset(conn, asset_id)
    if row["path"].startswith("s3://"):
        url = request.app.state.s3.presigned_get(row["path"], row["name"])
        return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
    path = Path(row["path"])
    if not path.is_file():
        raise HTTPException(410, f"asset {asset_id} is indexed but its file is no longer at {row['path']}")
    return FileResponse(path, media_type=row["mime_type"] or "application/octet-stream", filename=row["name"])


@router.get("/v1/assets/{asset_id}/thumbnail", response_class=Response,
            responses={**_THUMBNAIL, **_REDIRECT, **error_responses(404)})
def get_asset_thumbnail(
    asset_id: int, request: Request, t: float | None = Query(default=None, ge=0, le=1e7, description="Video: seconds."),
    conn: psycopg.Connection = Depends(db_connection),
) -> Response:
    """A stored preview (.blend), or a 256 px JPEG made from the local file: an image (EXR tone-mapped) or
    a video frame (at ``t`` seconds, default the middle); an image in S3 gets a presigned URL."""
    row = _asset(conn, asset_id)
    thumb = conn.execute("SELECT data, mime_type FROM thumbnails WHERE file_id = %s", (asset_id,)).fetchone()
    if thumb and t is None:
        return Response(bytes(thumb["data"]), media_type=thumb["mime_type"], headers=_THUMB_CACHE)
    if row["path"].startswith("s3://") and row["asset_type"] == "image" and row["extension"] != "exr":
        return RedirectResponse(request.app.state.s3.presigned_get(row["path"], row["name"]), status_code=302)
    if row["asset_type"] in ("image", "video") and not row["path"].startswith("s3://"):
        duration = (row["metadata_json"].get("video") or {}).get("duration_s")
        jpeg = _local_thumbnail(Path(row["path"]), row["asset_type"], duration, t)
        if jpeg:
            return Response(jpeg, media_type="image/jpeg", headers=_THUMB_CACHE)
    raise HTTPException(404, f"asset {asset_id} has no thumbnail")


_THUMB_CACHE = {"Cache-Control": "max-age=3600"}


def _asset(conn: psycopg.Connection, asset_id: int) -> dict[str, Any]:
    row = conn.execute(  # not SELECT *: the embedding, tsvector and trigram columns are of no use here
        "SELECT id, path, name, extension, size_bytes, sha256, mime_type, asset_type, status, description,"
        " metadata_json FROM files WHERE id = %s",
        (asset_id,),
    ).fetchone()
    if row is None:
        raise HTTPException(404, f"no asset with id {asset_id}")
    return row


def _local_thumbnail(path: Path, asset_type: str, duration: float | None, t: float | None) -> bytes | None:
    from cgchat.ingest.extractors.base import ExtractionError
    from cgchat.ingest.pictures import load_frames, load_image, thumbnail_jpeg

    try:
        if asset_type == "video":
            at = t if t is not None else (duration or 0) / 2
            return thumbnail_jpeg(load_frames(path, [at])[0].image)
        return thumbnail_jpeg(load_image(path))
    except (ExtractionError, OSError, ValueError):
        return None
