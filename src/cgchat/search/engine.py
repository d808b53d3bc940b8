"""Search: one query, one SQL round trip, results that say which retrievers found them and why.

Hybrid fuses semantic, keyword and (when a CLIP model is installed) visual candidates with
reciprocal rank fusion (RRF): each list contributes 1 / (k + rank), so an asset several retrievers
like rises above one only one likes, without having to calibrate cosine similarities against
text-rank scores. A query may be words, a picture (image→image), an indexed asset ("more like
this"), or words plus a picture: the words go to the text retrievers, the picture to the visual one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from cgchat.models.text_encoder import TextEncoder, get_text_encoder
from cgchat.search import filters as filters_mod
from cgchat.search.filters import Filters
from cgchat.search.query_parser import parse_filters
from cgchat.search.retrievers import (
    keyword_cte,
    keyword_params,
    semantic_cte,
    semantic_params,
    visual_cte,
    visual_params,
)
from cgchat.search.visual_query import (
    VisualQueryError,
    VisualUnavailable,
    asset_vector,
    image_vector,
    text_vector,
    visual_encoder,
)
from cgchat.settings import get_settings

MODES = ("hybrid", "semantic", "keyword", "visual")
_ALIASES = {"semantic": "sem", "keyword": "kw", "visual": "vis"}
MAX_QUERY_CHARS = 2000
MAX_LIMIT = 200
# Weighted RRF: each retriever's 1 / (k + rank) is multiplied by its weight. Keyword 1.5 was chosen on
# BEIR SciFact's 809 train queries (grid 0.5-2.0 at the rrf_k default 60; bench/retrieval_eval.py):
# nDCG@10 0.714 at 1.0, 0.723 at 1.5. Never tuned on the test queries.
RRF_WEIGHTS = {"sem": 1.0, "kw": 1.5, "vis": 1.0}
# pgvector 0.6 filters the ef_search nearest vectors and does not search on, so a filter that one asset in
# ten passes leaves ~10 of 100 candidates: at 100k assets 38 % of filtered semantic queries came back empty
# and recall@10 was 0.56 (bench/search_scale.py). Filtered queries search wider, at pgvector's maximum:
# 6 % empty, recall 0.87, ~25 ms more. Not enough at 1M (docs/benchmarks.md, "Search at scale"):
# pgvector 0.8's hnsw.iterative_scan is the real fix.
FILTERED_EF_SEARCH = 1000


class SearchError(ValueError):
    """The request cannot be searched as given; the message says what to change."""


class VisualModelMissing(SearchError):
    """Visual search was asked for and no CLIP model is installed; the message names the install command."""


@dataclass(slots=True)
class SearchRequest:
    query: str = ""
    mode: str = "hybrid"
    filters: Filters = field(default_factory=Filters)
    limit: int = 10
    auto_filters: bool = True  # also apply filters understood from the query's words
    image: bytes | None = None  # an encoded picture: image→image
    like_asset_id: int | None = None  # an indexed asset: "more like this" (itself left out of the results)
    use_visual: bool = True  # hybrid: fuse the visual retriever in when a model is installed


@dataclass(slots=True)
class SearchResult:
    id: int
    path: str
    name: str
    type: str
    score: float
    matched_by: list[str]
    scores: dict[str, float]
    ranks: dict[str, int]
    metadata: dict[str, Any]
    extension: str
    size_bytes: int
    status: str
    description: str
    time_s: float | None = None  # video hits: the keyframe that matched visually

    @property
    def thumbnail_url(self) -> str | None:
        """Images and videos always have one (a video's at the matching keyframe); .blend files when
        saved with a preview. Served by GET /v1/assets/{id}/thumbnail."""
        url = f"/v1/assets/{self.id}/thumbnail"
        if self.type == "video":
            return url + (f"?t={self.time_s:g}" if self.time_s is not None else "")
        if self.type == "image" or ((self.metadata or {}).get("blend") or {}).get("has_preview"):
            return url
        return None

    @property
    def timecode(self) -> str | None:
        if self.time_s is None:
            return None
        minutes, seconds = divmod(self.time_s, 60)
        hours, minutes = divmod(int(minutes), 60)
        return f"{hours:02d}:{minutes:02d}:{seconds:06.3f}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "path": self.path, "name": self.name, "type": self.type, "score": self.score,
            "matched_by": self.matched_by, "scores": self.scores, "ranks": self.ranks,
            "extension": self.extension, "size_bytes": self.size_bytes, "status": self.status,
            "description": self.description, "metadata": self.metadata, "time_s": self.time_s,
            "timecode": self.timecode, "thumbnail_url": self.thumbnail_url,
        }


@dataclass(slots=True)
class SearchResponse:
    query: str
    mode: str
    filters: Filters
    results: list[SearchResult]
    retrievers: list[str] = field(default_factory=list)  # which ran (hybrid leaves visual out without a model)
    visual_model: str | None = None


def search(conn: psycopg.Connection, request: SearchRequest, encoder: TextEncoder | None = None) -> SearchResponse:
    """Run a search; raises SearchError for bad requests (VisualModelMissing when visual needs a model)."""
    query = _validate(request)
    applied = parse_filters(query).merged(request.filters) if request.auto_filters and query else request.filters
    try:
        filters_mod.validate(applied)
    except ValueError as exc:
        raise SearchError(str(exc)) from exc
    where, params = filters_mod.to_sql(applied)
    settings = get_settings()
    params.update(fusion_params(request.limit))
    ctes: list[tuple[str, sql.Composable]] = []
    text_mode = request.mode in ("hybrid", "semantic", "keyword") and query
    if text_mode and request.mode in ("hybrid", "semantic"):
        encoder = encoder or get_text_encoder()
        params.update(semantic_params(encoder.encode_one(query), encoder.model_id))
        ctes.append(("semantic", semantic_cte(where)))
    if text_mode and request.mode in ("hybrid", "keyword"):
        params.update(keyword_params(query))
        ctes.append(("keyword", keyword_cte(where)))
    visual_model = _add_visual(conn, request, query, where, params, ctes)
    # Transaction-local (set_config(..., true)), so pooled connections keep no session state; sent in
    # one pipeline with the query, so it costs no extra round trip.
    # Never a prepared statement: psycopg prepares a query after 5 runs on a connection, and after 5 more
    # Postgres may switch to a generic plan, blind to the query's words and vector: hybrid went from 17 ms
    # to 90 ms p50 at 100k assets on a reused connection (bench/search_scale.py). Planning costs ~2 ms.
    ef_search = settings.hnsw_ef_search if applied.is_empty() else max(settings.hnsw_ef_search, FILTERED_EF_SEARCH)
    with conn.pipeline():
        conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef_search),))
        cursor = conn.execute(_fused_query(ctes), params, prepare=False)
    rows = cursor.fetchall()
    conn.commit()
    mode = request.mode if len(ctes) > 1 or request.mode != "hybrid" else ctes[0][0]
    return SearchResponse(query, mode, applied, [_result(row, mode) for row in rows],
                          retrievers=[name for name, _ in ctes], visual_model=visual_model)


def _add_visual(conn: psycopg.Connection, request: SearchRequest, query: str, where: sql.Composable,
                params: dict[str, Any], ctes: list[tuple[str, sql.Composable]]) -> str | None:
    """Add the visual retriever when asked for (mode visual, or a picture) or when hybrid can use it."""
    picture = request.image is not None or request.like_asset_id is not None
    required = request.mode == "visual" or picture
    if not required and not (request.mode == "hybrid" and request.use_visual):
        return None
    try:
        clip = visual_encoder()
    except VisualUnavailable as exc:
        if required:
            raise VisualModelMissing(str(exc)) from exc
        return None  # hybrid without a model: text retrievers only
    try:
        if request.image is not None:
            vector = image_vector(clip, request.image)
        elif request.like_asset_id is not None:
            vector = asset_vector(conn, clip, request.like_asset_id)
        else:
            vector = text_vector(clip, query)
    except VisualQueryError as exc:
        raise SearchError(str(exc)) from exc
    params.update(visual_params(vector, clip.model_id, request.like_asset_id))
    ctes.append(("visual", visual_cte(where)))
    return clip.model_id


def _validate(request: SearchRequest) -> str:
    query = (request.query or "").strip()
    picture = request.image is not None or request.like_asset_id is not None
    if request.mode not in MODES:
        raise SearchError(f"unknown mode {request.mode!r}; use one of {', '.join(MODES)}")
    if not query and not picture:
        raise SearchError("query is empty; type some words to search for (or give a picture to match)")
    if request.image is not None and request.like_asset_id is not None:
        raise SearchError("give either an image or an asset to match, not both")
    if picture and request.mode in ("semantic", "keyword"):
        raise SearchError(f"mode {request.mode} searches words; use mode visual or hybrid with a picture")
    if len(query) > MAX_QUERY_CHARS:
        raise SearchError(f"query is {len(query)} characters; the limit is {MAX_QUERY_CHARS}")
    if "\x00" in query:
        raise SearchError("query contains a NUL character")
    if not 1 <= request.limit <= MAX_LIMIT:
        raise SearchError(f"limit must be between 1 and {MAX_LIMIT}")
    return query


def fusion_params(limit: int) -> dict[str, Any]:
    """The parameters of the fused query itself: candidates per retriever, result count, RRF k and weights."""
    settings = get_settings()
    return {"k": max(settings.search_candidates, limit), "limit": limit, "rrf_k": settings.rrf_k,
            **{f"rrf_w_{alias}": weight for alias, weight in RRF_WEIGHTS.items()}}


def _fused_query(ctes: list[tuple[str, sql.Composable]]) -> sql.Composable:
    """Outer-join the retrievers' candidate lists and rank by RRF."""
    aliases = [_ALIASES[n] for n, _ in ctes]
    joined = sql.SQL(aliases[0])
    for alias in aliases[1:]:
        joined = sql.SQL("{} FULL JOIN {} USING (id)").format(joined, sql.SQL(alias))
    rrf = sql.SQL(" + ").join(
        sql.SQL("COALESCE({w} / (%(rrf_k)s + {a}.rank), 0)").format(w=sql.Placeholder(f"rrf_w_{a}"), a=sql.SQL(a))
        for a in aliases
    )
    # Equal RRF scores are common (ranks 1,2 vs 2,1): the keyword score, which rewards the query's
    # own words in names and paths, then the semantic one, decide instead of an arbitrary id.
    tiebreak = sql.SQL(", ").join(
        sql.SQL("COALESCE(fused.{} , 0) DESC").format(sql.Identifier(f"{a}_score")) for a in sorted(aliases)
    )
    cols = sql.SQL(", ").join(
        sql.SQL("{a}.score AS {a}_score, {a}.rank AS {a}_rank").format(a=sql.SQL(a)) for a in aliases
    )
    if "vis" in aliases:
        cols = sql.SQL("{}, vis.time_s AS vis_time_s").format(cols)
    return sql.SQL(
        """WITH {ctes},
fused AS (SELECT id, {cols}, {rrf} AS rrf FROM {joined})
SELECT f.id, f.path, f.name, f.asset_type, f.extension, f.size_bytes, f.status, f.description, f.metadata_json,
       fused.*
FROM fused JOIN files f ON f.id = fused.id
ORDER BY fused.rrf DESC, {tiebreak}, f.id
LIMIT %(limit)s"""
    ).format(ctes=sql.SQL(",\n").join(c for _, c in ctes), cols=cols, rrf=rrf, joined=joined, tiebreak=tiebreak)


def _result(row: dict[str, Any], mode: str) -> SearchResult:
    scores: dict[str, float] = {}
    ranks: dict[str, int] = {}
    for name, alias in _ALIASES.items():
        if row.get(f"{alias}_rank") is not None:
            scores[name] = round(float(row[f"{alias}_score"]), 6)
            ranks[name] = int(row[f"{alias}_rank"])
    score = float(row["rrf"]) if mode == "hybrid" else scores.get(mode, 0.0)
    return SearchResult(
        id=row["id"], path=row["path"], name=row["name"], type=row["asset_type"], score=round(score, 6),
        matched_by=list(scores), scores=scores, ranks=ranks, metadata=row["metadata_json"],
        extension=row["extension"], size_bytes=row["size_bytes"], status=row["status"],
        description=row["description"], time_s=_time(row.get("vis_time_s")),
    )


def _time(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)
