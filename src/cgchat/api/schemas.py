"""Request and response models of the HTTP API: the contract clients (UI, Blender add-on) code to."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AssetTypeName = Literal["image", "video", "blend", "model", "document", "other"]


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(default="", max_length=2000, description="Words, names or a question (may be empty "
                       "when a picture is given).")
    mode: Literal["hybrid", "semantic", "keyword", "visual"] = Field(
        default="hybrid", description="visual: CLIP (text→image, or the picture given); hybrid fuses every "
        "retriever that applies, visual included when a model is installed.")
    image_base64: str | None = Field(
        default=None, max_length=28_000_000, description="A reference picture (PNG, JPEG, WebP, TIFF...), base64 or a "
        "data: URL, at most 20 MB decoded: finds assets that look like it.")
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


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: bool
    assets: int | None = None
    text_model: str
    visual_model: str | None = None
