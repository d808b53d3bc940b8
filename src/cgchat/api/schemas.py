"""Request and response models of the HTTP API: the contract clients (UI, Blender add-on) code to."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cgchat.chat.stream_models import Source

AssetTypeName = Literal["image", "video", "blend", "model", "document", "other"]


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # as the schema says: true is not a number

    query: str = Field(default="", max_length=2000, description="Words, names or a question (may be empty "
                       "when a picture is given).")
    mode: Literal["hybrid", "semantic", "keyword", "visual"] = Field(
        default="hybrid", description="visual: CLIP (text→image, or the picture given); hybrid fuses every "
        "retriever that applies, visual included when a model is installed.")
    image_base64: str | None = Field(
        default=None, min_length=1, max_length=28_000_000,
        description="A reference picture (PNG, JPEG, WebP, TIFF...), base64 or a data: URL, at most 20 MB "
        "decoded: finds assets that look like it.")
    like_asset_id: int | None = Field(default=None, ge=1, description="Find assets that look like this indexed one.")
    type: list[AssetTypeName] | AssetTypeName | None = Field(default=None, description="Asset type(s).")
    engine: list[Literal["cycles", "eevee", "workbench"]] | None = None
    resolution: str | None = Field(default=None, max_length=16, description="4k, 1080p, ... or WIDTHxHEIGHT")
    fps: float | None = Field(default=None, gt=0, le=1000)
    min_duration_s: float | None = Field(default=None, ge=0)
    max_duration_s: float | None = Field(default=None, ge=0)
    extension: list[str] | None = Field(default=None, max_length=20)
    limit: int = Field(default=10, ge=1, le=200)
    auto_filters: bool = Field(default=True, description="Also apply filters understood from the query text.")


class SearchItem(BaseModel):
    id: int
    path: str
    name: str
    type: str
    score: float
    matched_by: list[str]
    scores: dict[str, float]
    ranks: dict[str, int]
    extension: str
    size_bytes: int
    status: str
    description: str
    metadata: dict[str, Any]
    time_s: float | None = Field(default=None, description="Video hits: where in the clip it matched visually.")
    timecode: str | None = Field(default=None, description="time_s as HH:MM:SS.mmm.")
    thumbnail_url: str | None = Field(default=None, description="A picture of the asset (a video's at time_s), "
                                      "or none for assets without one.")


class SearchReply(BaseModel):
    query: str
    mode: str
    filters: dict[str, Any]
    retrievers: list[str] = Field(description="The retrievers that ran: semantic, keyword, visual.")
    visual_model: str | None = Field(description="The CLIP model the visual retriever used, if it ran.")
    results: list[SearchItem]


class CitationRef(BaseModel):
    n: int = Field(description="The [n] marker in the answer.")
    asset_id: int


class ChatUsage(BaseModel):
    input_tokens: int | None
    output_tokens: int | None


class ChatError(BaseModel):
    code: str
    message: str
    retryable: bool


class ChatReply(BaseModel):
    """POST /v1/chat: the events of /v1/chat/stream gathered into one object."""

    request_id: str
    session_id: str
    message_id: str
    provider: str
    model: str
    standalone_query: str = Field(description="The question rewritten to stand alone (follow-ups).")
    retrievers: list[str]
    sources: list[Source]
    answer: str
    citations: list[CitationRef] = Field(description="Markers that name a source sent; others are removed.")
    usage: ChatUsage | None = None
    error: ChatError | None = Field(description="The model failed (the answer may be partial).")
    finish_reason: str


class SessionSummary(BaseModel):
    id: str
    title: str
    created_at: str
    updated_at: str


class SessionList(BaseModel):
    sessions: list[SessionSummary]


class SessionMessage(BaseModel):
    id: str
    role: Literal["user", "assistant"]
    content: str
    standalone_query: str | None
    sources: list[dict[str, Any]]
    citations: list[CitationRef]
    provider: str | None
    model: str | None
    finish_reason: str | None
    created_at: str | None


class SessionHistory(BaseModel):
    session_id: str
    messages: list[SessionMessage]


class Dependency(BaseModel):
    kind: str
    raw_path: str = Field(description="As written in the file that references it.")
    resolved_path: str | None
    name: str
    exists: bool


class AssetDetail(BaseModel):
    id: int
    path: str
    name: str
    extension: str
    size_bytes: int
    sha256: str
    mime_type: str | None
    asset_type: AssetTypeName
    status: Literal["indexed", "missing"]
    description: str
    metadata: dict[str, Any]
    dependencies: list[Dependency]
    thumbnail_url: str
    file_url: str


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: bool
    assets: int | None = None
    text_model: str
    visual_model: str | None = None


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable: invalid_request, invalid_search, http_error, "
                      "unauthorized, request_too_large, database_unavailable, ...")
    message: str = Field(description="What went wrong and what to change, in words.")


class ErrorReply(BaseModel):
    """The body of every error response (api/errors.py): one shape, never a traceback."""

    error: ErrorDetail


_ERROR_MEANINGS = {
    400: "The request is well-formed but cannot be answered as given (the message says what to change).",
    401: "No valid bearer token (AUTH_MODE=cognito).",
    404: "No such resource (or not this user's).",
    410: "The asset is indexed but its file is gone.",
    413: "The request body is larger than the server accepts.",
    422: "The request does not match this schema (the message names each field).",
    503: "The database, the signing keys or a model is unavailable; retry shortly.",
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorReply"}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: these statuses answer with an ErrorReply."""
    return {status: {"model": ErrorReply, "description": _ERROR_MEANINGS[status]} for status in statuses}


def document_errors(openapi: dict[str, Any], authenticated: Any) -> dict[str, Any]:
    """Declare in an OpenAPI document the errors every operation can answer, in their real shape.

    FastAPI documents its 422 as ``{"detail": [...]}``, but api/errors.py answers every error as
    ErrorReply, and the statuses that apply to whole classes of routes (auth, body size, database) are
    added by middleware no route declares. ``authenticated(path)`` says whether auth guards a path.
    """
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorDetail", ErrorDetail.model_json_schema())
    schemas["ErrorReply"] = ErrorReply.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas["ErrorReply"].pop("$defs", None)
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for path, operations in openapi.get("paths", {}).items():
        for operation in operations.values():
            statuses = set()
            if operation.get("parameters") or operation.get("requestBody"):
                statuses.add(422)
            if operation.get("requestBody"):
                statuses |= {400, 413}
            if authenticated(path):
                statuses |= {401, 503}
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses | {int(s) for s in responses if s.isdigit() and int(s) >= 400}):
                declared = responses.get(str(status), {}).get("description") if status != 422 else None
                responses[str(status)] = {
                    "description": declared or _ERROR_MEANINGS.get(status, "An error."),
                    "content": {"application/json": {"schema": _ERROR_REF}},
                }
    return openapi
