"""The whole chat stream format as typed models, in one file: what clients (web UI, Blender add-on,
curl) can rely on. Each event is sent as Server-Sent Events ``id:``, ``event:``, ``data: <json>``.

Order: meta → sources (always before any token) → token* / citation* → usage? → error? → done.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel


class Meta(BaseModel):
    event: Literal["meta"] = "meta"
    request_id: str
    session_id: str
    message_id: str
    provider: str
    model: str
    standalone_query: str
    retrievers: list[str] = []  # which searched: semantic, keyword, visual (appearance questions, CLIP installed)


class Source(BaseModel):
    n: int
    asset_id: int
    path: str
    name: str
    type: str
    thumbnail_url: str | None
    score: float
    matched_by: list[str]
    snippet: str
    time_s: float | None = None  # a video matched visually: the keyframe's time
    timecode: str | None = None


class Sources(BaseModel):
    event: Literal["sources"] = "sources"
    sources: list[Source]


class Token(BaseModel):
    event: Literal["token"] = "token"
    text: str


class Citation(BaseModel):
    event: Literal["citation"] = "citation"
    n: int
    asset_id: int


class UsageInfo(BaseModel):
    event: Literal["usage"] = "usage"
    input_tokens: int | None
    output_tokens: int | None


class Error(BaseModel):
    event: Literal["error"] = "error"
    code: str
    message: str
    retryable: bool


class Done(BaseModel):
    event: Literal["done"] = "done"
    finish_reason: str


StreamEvent = Meta | Sources | Token | Citation | UsageInfo | Error | Done


def to_sse(event: StreamEvent, event_id: int) -> str:
    """One SSE frame. The ``event`` discriminator names the frame and is left out of ``data``."""
    data = event.model_dump(exclude={"event"})
    return f"id: {event_id}\nevent: {event.event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


PING = ": ping\n\n"
