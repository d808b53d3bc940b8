"""The SQL of each retriever, as CTEs that hybrid search runs together in one round trip.

Every CTE yields (id, score, rank) for at most ``k`` candidates, already filtered.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from psycopg import sql

from cgchat.search.filters import JOINS
from cgchat.tokens import trigrams, words

# BM25 units: a name that is trigram-similar to the query (typos: "dragn") and exact ID tokens (sh010,
# v003) add to the BM25 score of the words, about as much as one more matching word would.
TRIGRAM_WEIGHT = 2.0
EXACT_TOKEN_WEIGHT = 1.0
TRIGRAM_MIN = 0.3
# Each query term contributes its best postings only (by BM25 impact, through the (term, impact) index):
# a term in most of a million assets costs this many rows, not all of them. Exact for rarer terms.
POSTINGS_PER_TERM = 2000
# Only the best this many BM25 candidates (or k, when more) are joined with their files for the filters
# and the name bonuses; a query of common words can gather tens of thousands. Both limits are the
# approximation that keeps keyword search fast at a million assets: with a filter that most of a common
# word's best postings fail, fewer results come back than exist.
KEYWORD_POOL = 300


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
    """BM25 over the keyword postings (name > path > metadata = body, see migration 006), plus name
    trigram similarity and exact ID tokens; trigram-only candidates (typos) are looked for only when a
    query word is unknown to the index, so a query of known words reads postings and nothing else.

    Terms are OR-ed, as BM25 does: an AND of every query word finds almost nothing for natural questions.
    """
    return sql.SQL(
        """kw_q AS (
    SELECT t.term, ln(1 + (s.n_docs - t.df + 0.5::float8) / (t.df + 0.5::float8)) AS idf
    FROM (SELECT DISTINCT lexeme AS term FROM unnest(to_tsvector('english', %(kw_text)s))) q
    JOIN keyword_terms t ON t.term = q.term AND t.df > 0
    CROSS JOIN keyword_stats s
),
kw_bm25 AS (
    SELECT p.file_id AS id,
           sum(q.idf * keyword_bm25_tf(p.tf, p.dl, s.total_length / greatest(s.n_docs, 1), s.k1, s.b)) AS bm25
    FROM kw_q q CROSS JOIN keyword_stats s
    CROSS JOIN LATERAL (
        SELECT kp.file_id, kp.tf, kp.dl FROM keyword_postings kp
        WHERE kp.term = q.term ORDER BY kp.impact DESC LIMIT %(kw_per_term)s
    ) p
    GROUP BY p.file_id
    ORDER BY bm25 DESC
    LIMIT greatest(%(kw_pool)s, %(k)s)
),
kw_fuzzy AS (
    SELECT f.id FROM files f {joins}
    CROSS JOIN LATERAL ({trigram_sim}) tg
    WHERE {where} AND f.name_trigrams && %(trg)s AND tg.sim >= %(trg_min)s
      AND EXISTS (SELECT 1 FROM unnest(to_tsvector('english', %(kw_text)s)) u
                  WHERE NOT EXISTS (SELECT 1 FROM keyword_terms t WHERE t.term = u.lexeme AND t.df > 0))
    ORDER BY tg.sim DESC, f.id
    LIMIT %(k)s
),
kw AS (
    SELECT id, score, row_number() OVER (ORDER BY score DESC, id) AS rank FROM (
        SELECT f.id,
               COALESCE(cand.bm25, 0)
               + %(trg_weight)s * tg.sim
               + %(tok_weight)s * cardinality(ARRAY(SELECT unnest(f.tokens) INTERSECT SELECT unnest(%(id_tokens)s::text[])))
                 AS score
        FROM (SELECT id, max(bm25) AS bm25 FROM (SELECT id, bm25 FROM kw_bm25 UNION ALL
                                                 SELECT id, NULL FROM kw_fuzzy) u GROUP BY id) cand
        JOIN files f ON f.id = cand.id {joins}
        CROSS JOIN LATERAL ({trigram_sim}) tg
        WHERE {where}
        ORDER BY score DESC, f.id
        LIMIT %(k)s
    ) s
)"""
    ).format(joins=JOINS, where=where, trigram_sim=_TRIGRAM_SIM)


# pg_trgm's similarity() of the asset's name and the query, over the stored trigram arrays.
_TRIGRAM_SIM = sql.SQL(
    """SELECT CASE WHEN cardinality(f.name_trigrams) = 0 OR %(n_trg)s = 0 THEN 0.0
                ELSE shared / (cardinality(f.name_trigrams) + %(n_trg)s - shared) END AS sim
        FROM (SELECT count(*)::float AS shared FROM unnest(f.name_trigrams) t WHERE t = ANY(%(trg)s)) c"""
)


def keyword_params(query: str) -> dict[str, Any]:
    """Bound parameters for keyword_cte. The query is cut into words as names are (snake_case, camelCase,
    dots), then Postgres stems them with the same English configuration that built search_tsv."""
    query_words = words(query)
    grams = trigrams(query)
    return {
        "kw_text": " ".join(query_words),
        "kw_per_term": POSTINGS_PER_TERM,
        "kw_pool": KEYWORD_POOL,
        "trg": grams,
        "n_trg": len(grams),
        "id_tokens": [w for w in query_words if any(c.isdigit() for c in w) and any(c.isalpha() for c in w)],
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
