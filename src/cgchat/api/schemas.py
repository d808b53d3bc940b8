"""Request and response models of the HTTP API: the contract clients (UI, Blender add-on) code to."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AssetTypeName = Literal["image", "video", "blend", "model", "document", "other"]


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000, description="Words, names or a question.")
    mode: Literal["hybrid", "semantic", "keyword"] = "hybrid"
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


class SearchReply(BaseModel):
    query: str
    mode: str
    filters: dict[str, Any]
    results: list[SearchItem]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: bool
    assets: int | None = None
    text_model: str
