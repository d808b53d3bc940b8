"""The SQL of each retriever, as CTEs that hybrid search runs together in one round trip.

Every CTE yields (id, score, rank) for at most ``k`` candidates, already filtered.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from psycopg import sql

from cgchat.search.filters import JOINS
from cgchat.tokens import trigrams, words

# ts_rank weights for D, C, B, A: name (A) counts most, then path (B), metadata (C), body (D).
TS_WEIGHTS = "{0.1, 0.2, 0.4, 1.0}"
TRIGRAM_WEIGHT = 0.6
EXACT_TOKEN_WEIGHT = 0.5
TRIGRAM_MIN = 0.3


def semantic_cte(where: sql.Composable) -> sql.Composable:
    """Nearest descriptions by cosine distance (HNSW), among vectors of the current model only."""
    return sql.SQL(
        """sem AS (
    SELECT id, score, row_number() OVER (ORDER BY dist, id) AS rank FROM (
        SELECT f.id, f.metadata_embedding <=> %(qvec)s AS dist, 1 - (f.metadata_embedding <=> %(qvec)s) AS score
        FROM files f {joins}
        WHERE {where} AND f.embedding_model = %(model)s AND f.metadata_embedding IS NOT NULL
        ORDER BY f.metadata_embedding <=> %(qvec)s
        LIMIT %(k)s
    ) s
)"""
    ).format(joins=JOINS, where=where)


def keyword_cte(where: sql.Composable) -> sql.Composable:
    """Full-text rank (name > path > metadata > body) + name trigram similarity + exact ID tokens.

    Terms are OR-ed: an AND of every query word finds almost nothing for natural questions.
    """
    return sql.SQL(
        """kw AS (
    SELECT id, score, row_number() OVER (ORDER BY score DESC, id) AS rank FROM (
        SELECT f.id,
               COALESCE(ts_rank(%(ts_weights)s::float4[], f.search_tsv, q.tsq, 1), 0)
               + %(trg_weight)s * tg.sim
               + %(tok_weight)s * cardinality(ARRAY(SELECT unnest(f.tokens) INTERSECT SELECT unnest(%(id_tokens)s::text[])))
                 AS score
        FROM files f {joins}
        CROSS JOIN (SELECT CASE WHEN %(tsq)s = '' THEN NULL ELSE to_tsquery('english', %(tsq)s) END AS tsq) q
        CROSS JOIN LATERAL (
            SELECT CASE WHEN cardinality(f.name_trigrams) = 0 OR %(n_trg)s = 0 THEN 0.0
                        ELSE shared / (cardinality(f.name_trigrams) + %(n_trg)s - shared) END AS sim
            FROM (SELECT count(*)::float AS shared FROM unnest(f.name_trigrams) t WHERE t = ANY(%(trg)s)) c
        ) tg
        WHERE {where}
          AND ((q.tsq IS NOT NULL AND f.search_tsv @@ q.tsq)
               OR (f.name_trigrams && %(trg)s AND tg.sim >= %(trg_min)s)
               OR f.tokens && %(id_tokens)s::text[])
        ORDER BY score DESC, f.id
        LIMIT %(k)s
    ) s
)"""
    ).format(joins=JOINS, where=where)


def keyword_params(query: str) -> dict[str, Any]:
    """Bound parameters for keyword_cte. The tsquery text is built from word tokens only
    (letters and digits), so no user character can reach tsquery syntax; it is still bound."""
    query_words = words(query)
    grams = trigrams(query)
    return {
        "tsq": " | ".join(dict.fromkeys(query_words)),
        "trg": grams,
        "n_trg": len(grams),
        "id_tokens": [w for w in query_words if any(c.isdigit() for c in w) and any(c.isalpha() for c in w)],
        "ts_weights": TS_WEIGHTS,
        "trg_weight": TRIGRAM_WEIGHT,
        "tok_weight": EXACT_TOKEN_WEIGHT,
        "trg_min": TRIGRAM_MIN,
    }


def semantic_params(vector: np.ndarray, model_id: str) -> dict[str, Any]:
    return {"qvec": vector, "model": model_id}


def visual_cte(where: sql.Composable) -> sql.Composable:
    """Nearest pictures by CLIP cosine distance: images, .blend previews and video keyframes, each
    through its own HNSW index, vectors of the installed model only. A video counts once, at its
    best keyframe, whose time is returned so the hit can say where in the clip it matched."""
    source = sql.SQL(
        """(SELECT f.id, {vec} <=> %(vvec)s AS dist, {time} AS time_s
     FROM {base} WHERE {where} AND {model} = %(vmodel)s AND f.id IS DISTINCT FROM %(vexclude)s
     ORDER BY {vec} <=> %(vvec)s LIMIT {limit})"""
    )
    keyframes = sql.SQL("video_keyframes kf JOIN files f ON f.id = kf.file_id {joins}").format(joins=JOINS)
    files = sql.SQL("files f {joins}").format(joins=JOINS)
    parts = [
        source.format(vec=sql.SQL("i.visual_embedding"), time=sql.SQL("NULL::float8"), base=files, where=where,
                      model=sql.SQL("i.visual_model"), limit=sql.SQL("%(k)s")),
        source.format(vec=sql.SQL("b.visual_embedding"), time=sql.SQL("NULL::float8"), base=files, where=where,
                      model=sql.SQL("b.visual_model"), limit=sql.SQL("%(k)s")),
        # Several keyframes of one clip may be near: fetch more, keep each video's best below.
        source.format(vec=sql.SQL("kf.visual_embedding"), time=sql.SQL("kf.time_s"), base=keyframes, where=where,
                      model=sql.SQL("kf.visual_model"), limit=sql.SQL("%(k)s * 4")),
    ]
    return sql.SQL(
        """vis_hits AS (
    {parts}
),
vis AS (
    SELECT id, score, time_s, row_number() OVER (ORDER BY dist, id) AS rank FROM (
        SELECT DISTINCT ON (id) id, dist, 1 - dist AS score, time_s FROM vis_hits ORDER BY id, dist
    ) s
    ORDER BY dist, id
    LIMIT %(k)s
)"""
    ).format(parts=sql.SQL("\n    UNION ALL\n    ").join(parts))


def visual_params(vector: np.ndarray, model_id: str, exclude_id: int | None = None) -> dict[str, Any]:
    """``exclude_id``: "more like this" asset, left out of its own results."""
    return {"vvec": vector, "vmodel": model_id, "vexclude": exclude_id}
