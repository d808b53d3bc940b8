"""Writes one asset (file row, type row, dependencies, thumbnail) in one transaction.

Either every row of a file lands or none does, so a crash or a bad value mid-file can never
leave a half-indexed asset behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from cgchat.ingest.describe import Description
from cgchat.ingest.extractors.base import Extraction

# asset type -> (table, columns an extractor may fill). Column names come only from here.
TYPE_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "image": ("images", ("width", "height", "mode", "channels", "format", "bit_depth")),
    "video": ("videos", ("duration_s", "fps", "codec", "width", "height", "frame_count")),
    "blend": (
        "blend_files",
        (
            "render_engine", "resolution_x", "resolution_y", "resolution_percentage", "frame_start", "frame_end",
            "fps", "blender_version", "compression", "scene_names", "objects", "materials", "has_preview",
        ),
    ),
    "model": (
        "models_3d",
        ("format", "mesh_count", "face_count", "vertex_count", "material_count", "node_count", "bounds", "fps",
         "frame_start", "frame_end"),
    ),
}
_JSON_COLUMNS = {"objects", "bounds"}


@dataclass(slots=True)
class FileFacts:
    """What the file system says about a file."""

    path: str
    name: str
    extension: str
    size_bytes: int
    mtime_ns: int
    sha256: str | None  # None: an S3 object read in ranges, with no full-object checksum from S3
    mime_type: str
    asset_type: str


def write_asset(
    conn: psycopg.Connection,
    facts: FileFacts,
    description: Description,
    extraction: Extraction,
    embedding: np.ndarray,
    embedding_model: str,
    name_trigrams: list[str],
) -> int:
    """Insert or update the asset at ``facts.path``; returns its id. Commits on success."""
    visual_status = visual_status_of(facts.asset_type, extraction)
    metadata = clean({**extraction.metadata, "path_info": description.path_info})
    if visual_status == "no_picture":
        metadata["visual"] = NO_PREVIEW_NOTE
    with conn.transaction():
        upserted = conn.execute(_UPSERT_FILE, {
            **_facts_dict(facts),
            "description": clean(description.text),
            "metadata": Jsonb(metadata),
            "embedding": embedding,
            "embedding_model": embedding_model,
            "name_text": clean(description.name_text),
            "path_text": clean(description.path_text),
            "meta_text": clean(description.meta_text),
            "body_text": clean(description.body_text),
            "name_trigrams": name_trigrams,
            "tokens": description.tokens,
            "visual_status": visual_status,
        }).fetchone()
        file_id = upserted["id"]
        # Same bytes re-indexed (a new text model): its pictures did not change, so neither do their
        # CLIP vectors; carry them over instead of re-embedding a whole library.
        same_pixels = facts.sha256 is not None and upserted["old_sha256"] == facts.sha256 \
            and upserted["old_visual_status"] == "embedded"
        kept = _saved_visual(conn, file_id, facts.asset_type) if same_pixels and visual_status == "pending" else None
        conn.execute(_DELETE_CHILD_ROWS, {"id": file_id})  # the type may have changed: clear them all
        _write_type_row(conn, file_id, facts.asset_type, extraction.type_row)
        if kept is not None:
            _restore_visual(conn, file_id, facts.asset_type, kept)
        _write_dependencies(conn, file_id, extraction)
        if extraction.thumbnail_png:
            _write_thumbnail(conn, file_id, extraction.thumbnail_png)
        _index_keywords(conn, file_id)  # last: it takes the keyword lock, held until this commit
    return file_id


NO_PREVIEW_NOTE = (
    "no preview thumbnail in this .blend, so it has no visual embedding; re-save it with "
    "Preferences > Save & Load > Save Preview Images enabled"
)


def visual_status_of(asset_type: str, extraction: Extraction) -> str | None:
    """'pending' for assets with a picture CLIP can embed (the visual pass fills them in), else None
    (or 'no_picture' for a .blend saved without its preview)."""
    if asset_type in ("image", "video"):
        return "pending"
    if asset_type == "blend":
        return "pending" if extraction.thumbnail_png else "no_picture"
    return None


def _saved_visual(conn: psycopg.Connection, file_id: int, asset_type: str) -> dict[str, Any] | None:
    row = conn.execute(
        sql.SQL("SELECT visual_embedding, visual_model FROM {} WHERE file_id = %s").format(
            sql.Identifier(TYPE_TABLES[asset_type][0])),
        (file_id,),
    ).fetchone()
    if row is None or row["visual_embedding"] is None:
        return None
    frames = conn.execute(
        "SELECT frame_index, time_s, visual_embedding, visual_model FROM video_keyframes WHERE file_id = %s",
        (file_id,),
    ).fetchall()
    return {**row, "frames": frames}


def _restore_visual(conn: psycopg.Connection, file_id: int, asset_type: str, kept: dict[str, Any]) -> None:
    conn.execute(
        sql.SQL("UPDATE {} SET visual_embedding = %s, visual_model = %s WHERE file_id = %s").format(
            sql.Identifier(TYPE_TABLES[asset_type][0])),
        (kept["visual_embedding"], kept["visual_model"], file_id),
    )
    if kept["frames"]:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO video_keyframes (file_id, frame_index, time_s, visual_embedding, visual_model)"
                " VALUES (%s, %s, %s, %s, %s)",
                [(file_id, f["frame_index"], f["time_s"], f["visual_embedding"], f["visual_model"])
                 for f in kept["frames"]],
            )
    conn.execute("UPDATE files SET visual_status = 'embedded' WHERE id = %s", (file_id,))


def touch(conn: psycopg.Connection, path: str, mtime_ns: int) -> None:
    """Same content, new mtime (a copy or `touch`): remember the mtime so the next run skips by stat."""
    with conn.transaction():
        conn.execute(
            "UPDATE files SET mtime_ns = %s, status = 'indexed', missing_since = NULL WHERE path = %s",
            (mtime_ns, path),
        )


def mark_missing(conn: psycopg.Connection, ids: list[int]) -> None:
    """Missing assets keep their keyword postings and still count in the BM25 statistics: they stay
    findable with include_missing, and a file that comes back unchanged is revived by ``touch`` alone."""
    with conn.transaction():
        conn.execute(
            "UPDATE files SET status = 'missing', missing_since = now() WHERE id = ANY(%s) AND status <> 'missing'",
            (ids,),
        )


def delete_assets(conn: psycopg.Connection, ids: list[int]) -> None:
    """Delete assets; their keyword postings go with them (cascade), their term statistics first."""
    with conn.transaction():
        conn.execute(_LOCK_KEYWORDS)
        conn.execute(_UNINDEX_KEYWORDS, {"ids": ids})
        conn.execute("DELETE FROM files WHERE id = ANY(%s)", (ids,))


def clean(value: Any) -> Any:
    """Strip NUL characters, which Postgres text and jsonb reject, from strings at any depth."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {clean(str(k)): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None  # NaN/inf are not JSON
    return value


def _facts_dict(facts: FileFacts) -> dict[str, Any]:
    return {name: getattr(facts, name) for name in FileFacts.__slots__}


def _write_type_row(conn: psycopg.Connection, file_id: int, asset_type: str, row: dict[str, Any]) -> None:
    if asset_type not in TYPE_TABLES:
        return
    table, allowed = TYPE_TABLES[asset_type]
    columns = [c for c in allowed if c in row]
    values = [Jsonb(clean(row[c])) if c in _JSON_COLUMNS else clean(row[c]) for c in columns]
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(c) for c in ["file_id", *columns]),
        sql.SQL(", ").join(sql.Placeholder() * (len(columns) + 1)),
    )
    conn.execute(query, [file_id, *values])


def _write_dependencies(conn: psycopg.Connection, file_id: int, extraction: Extraction) -> None:
    rows = [
        (file_id, d.kind, clean(d.raw_path), clean(d.resolved_path), clean(_basename(d.raw_path)), d.exists)
        for d in extraction.dependencies
    ]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO dependencies (file_id, kind, raw_path, resolved_path, name, exists)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                rows,
            )


def _write_thumbnail(conn: psycopg.Connection, file_id: int, png: bytes) -> None:
    width = height = None
    if png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) >= 24:
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    conn.execute(
        "INSERT INTO thumbnails (file_id, source, mime_type, width, height, data) VALUES (%s, %s, %s, %s, %s, %s)",
        (file_id, "embedded_preview", "image/png", width, height, png),
    )


def _index_keywords(conn: psycopg.Connection, file_id: int) -> None:
    """Replace the asset's BM25 postings with the terms of its (new) search_tsv, and move the document
    frequencies and collection length by the difference. Four statements, one pipelined round trip."""
    with conn.pipeline():
        conn.execute(_LOCK_KEYWORDS)
        conn.execute(_REINDEX_KEYWORD_STATS, {"id": file_id})
        conn.execute("DELETE FROM keyword_postings WHERE file_id = %(id)s", {"id": file_id})
        conn.execute(_INSERT_POSTINGS, {"id": file_id})


def _basename(raw_path: str) -> str:
    """Basename of a path written on any OS (Blender stores ``//tex\\a.png`` from Windows too)."""
    return os.path.basename(raw_path.replace("\\", "/").rstrip("/")) or raw_path


# One round trip instead of six; data-modifying CTEs all run, whatever the outer SELECT reads.
_DELETE_CHILD_ROWS = sql.SQL("WITH {} SELECT 1").format(
    sql.SQL(", ").join(
        sql.SQL("{} AS (DELETE FROM {} WHERE file_id = %(id)s)").format(sql.Identifier(f"d{n}"), sql.Identifier(table))
        for n, table in enumerate(
            ("images", "videos", "video_keyframes", "blend_files", "models_3d", "thumbnails", "dependencies")
        )
    )
)

# ``old`` reads the row as it was before this statement (one snapshot for the whole statement).
_UPSERT_FILE = """
WITH old AS (SELECT sha256, visual_status FROM files WHERE path = %(path)s)
INSERT INTO files (path, name, extension, size_bytes, mtime_ns, sha256, mime_type, asset_type, status,
                   description, metadata_json, metadata_embedding, embedding_model, search_tsv,
                   name_trigrams, tokens, visual_status, indexed_at, missing_since)
VALUES (%(path)s, %(name)s, %(extension)s, %(size_bytes)s, %(mtime_ns)s, %(sha256)s, %(mime_type)s,
        %(asset_type)s, 'indexed', %(description)s, %(metadata)s, %(embedding)s, %(embedding_model)s,
        setweight(to_tsvector('english', %(name_text)s), 'A')
          || setweight(to_tsvector('english', %(path_text)s), 'B')
          || setweight(to_tsvector('english', %(meta_text)s), 'C')
          || setweight(to_tsvector('english', left(%(body_text)s, 20000)), 'D'),
        %(name_trigrams)s, %(tokens)s, %(visual_status)s, now(), NULL)
ON CONFLICT (path) DO UPDATE SET
    name = EXCLUDED.name, extension = EXCLUDED.extension, size_bytes = EXCLUDED.size_bytes,
    mtime_ns = EXCLUDED.mtime_ns, sha256 = EXCLUDED.sha256, mime_type = EXCLUDED.mime_type,
    asset_type = EXCLUDED.asset_type, status = 'indexed', description = EXCLUDED.description,
    metadata_json = EXCLUDED.metadata_json, metadata_embedding = EXCLUDED.metadata_embedding,
    embedding_model = EXCLUDED.embedding_model, search_tsv = EXCLUDED.search_tsv,
    name_trigrams = EXCLUDED.name_trigrams, tokens = EXCLUDED.tokens, visual_status = EXCLUDED.visual_status,
    indexed_at = now(), missing_since = NULL
RETURNING id, (SELECT sha256 FROM old) AS old_sha256, (SELECT visual_status FROM old) AS old_visual_status
"""

# Every keyword writer locks the one statistics row first: their (short) updates run one at a time, so
# two writers can never lock keyword_terms rows in opposite orders.
_LOCK_KEYWORDS = "SELECT 1 FROM keyword_stats FOR UPDATE"

# Runs before the postings are replaced: ``old`` is the asset's previous terms, ``new`` its current ones.
_REINDEX_KEYWORD_STATS = """
WITH new AS (
    SELECT k.term, k.tf FROM files f CROSS JOIN LATERAL keyword_terms_of(f.search_tsv) k WHERE f.id = %(id)s
), old AS (
    SELECT term, dl FROM keyword_postings WHERE file_id = %(id)s
), added AS (
    INSERT INTO keyword_terms AS t (term, df)
    SELECT term, 1 FROM new WHERE NOT EXISTS (SELECT 1 FROM old WHERE old.term = new.term) ORDER BY term
    ON CONFLICT (term) DO UPDATE SET df = t.df + 1
), removed AS (
    UPDATE keyword_terms t SET df = t.df - 1
    FROM old WHERE t.term = old.term AND NOT EXISTS (SELECT 1 FROM new WHERE new.term = old.term)
)
UPDATE keyword_stats SET
    n_docs = n_docs + (EXISTS (SELECT 1 FROM new))::int - (EXISTS (SELECT 1 FROM old))::int,
    total_length = total_length + coalesce((SELECT sum(tf) FROM new), 0) - coalesce((SELECT max(dl) FROM old), 0)
"""

# Impacts at the average length that includes this asset (updated just before).
_INSERT_POSTINGS = """
INSERT INTO keyword_postings (file_id, term, tf, dl, impact)
SELECT %(id)s, t.term, t.tf, t.dl, keyword_bm25_tf(t.tf, t.dl, s.total_length / greatest(s.n_docs, 1), s.k1, s.b)
FROM (SELECT k.term, k.tf, sum(k.tf) OVER () AS dl
      FROM files f CROSS JOIN LATERAL keyword_terms_of(f.search_tsv) k WHERE f.id = %(id)s) t
CROSS JOIN keyword_stats s
"""

_UNINDEX_KEYWORDS = """
WITH old AS (
    SELECT file_id, term, dl FROM keyword_postings WHERE file_id = ANY(%(ids)s)
), terms AS (
    UPDATE keyword_terms t SET df = t.df - o.n
    FROM (SELECT term, count(*) AS n FROM old GROUP BY term) o WHERE t.term = o.term
), docs AS (
    SELECT count(*) AS n, coalesce(sum(dl), 0) AS length FROM (SELECT DISTINCT ON (file_id) file_id, dl FROM old) d
)
UPDATE keyword_stats SET n_docs = n_docs - docs.n, total_length = total_length - docs.length FROM docs
"""
