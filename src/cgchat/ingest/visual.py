"""The visual pass: CLIP embeddings for every asset whose ``visual_status`` says it needs one.

Ingest marks images, videos and .blend files (with a preview) ``pending``; this pass fills them in,
whenever a CLIP model is installed: right after ingest, later with ``cgchat ingest --visual``, or in
the API server's background thread. The work list lives in the database, so the pass is resumable
(stop it anywhere, the next run picks up what is still pending) and several passes can run at once:
each batch is claimed with ``FOR UPDATE SKIP LOCKED``.

Switching models: an asset embedded by another model than the installed one is stale. The pass
first marks stale assets pending, then re-embeds them; until then search simply does not see
them (it only compares vectors of the installed model).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from cgchat.ingest.extractors.base import ExtractionError
from cgchat.ingest.store import TYPE_TABLES
from cgchat.ingest.pictures import load_image, load_keyframes, load_picture_bytes
from cgchat.ingest.scan import absolute
from cgchat.models.clip_encoder import ClipEncoder
from cgchat.models.clip_preprocess import preprocess_one
from cgchat.settings import get_settings

log = logging.getLogger(__name__)

FILES_PER_BATCH = 8

# Called with (asset path just handled or None, total pending or None).
Progress = Callable[[str | None, int | None], None]


@dataclass(slots=True)
class VisualFailure:
    path: str
    reason: str


@dataclass(slots=True)
class VisualReport:
    model: str
    embedded: int = 0
    pictures: int = 0
    marked_stale: int = 0
    failed: list[VisualFailure] = field(default_factory=list)
    remaining: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "embedded": self.embedded, "pictures": self.pictures,
            "marked_stale": self.marked_stale, "remaining": self.remaining, "seconds": round(self.seconds, 3),
            "failed": [{"path": f.path, "reason": f.reason} for f in self.failed],
        }


@dataclass(slots=True)
class _Item:
    id: int
    path: str
    asset_type: str
    duration_s: float | None
    pixels: np.ndarray | None = None  # (n, 3, S, S): one picture, or a video's keyframes
    vectors: np.ndarray | None = None  # (n, dim) once embedded
    times: list[float] = field(default_factory=list)
    error: str | None = None


class VisualIndexer:
    def __init__(self, conn: psycopg.Connection, clip: ClipEncoder, progress: Progress | None = None,
                 local_files: dict[str, Path | BinaryIO] | None = None):
        """``local_files``: asset path → what to read instead: a local copy of an S3 object the worker
        downloaded, or a range reader over it (a long video)."""
        self.conn = conn
        self.clip = clip
        self.local_files = local_files or {}
        self.progress = progress or (lambda _path, _total: None)
        settings = get_settings()
        self.interval_s = settings.video_keyframe_interval_s
        self.max_frames = settings.video_max_keyframes

    def run(self, roots: Iterable[Path | str] | None = None, limit: int | None = None, retry_failed: bool = False,
            mark_stale: bool = True, should_stop: Callable[[], bool] = lambda: False) -> VisualReport:
        """Embed pending assets (under ``roots`` if given; at most ``limit`` of them).

        ``mark_stale``: first turn assets embedded by another model into pending ones (a scan of
        every visual asset: the background backfill does it only when the model changes).
        ``should_stop`` is asked between batches, so a server can shut down mid-pass.
        """
        started = time.perf_counter()
        roots = list(roots) if roots is not None else None
        scope = _scope(roots)
        report = VisualReport(model=self.clip.model_id)
        if mark_stale or retry_failed:
            report.marked_stale = self._mark_stale(scope, retry_failed)
        self.progress(None, self.pending(roots))
        while (limit is None or report.embedded + len(report.failed) < limit) and not should_stop():
            want = FILES_PER_BATCH if limit is None else min(FILES_PER_BATCH, limit - report.embedded - len(report.failed))
            if not self._batch(scope, want, report):
                break
        report.remaining = self.pending(roots)
        report.seconds = time.perf_counter() - started
        return report

    def pending(self, roots: Iterable[Path] | None = None) -> int:
        return pending_count(self.conn, roots)

    def _mark_stale(self, scope: tuple[str, dict[str, Any]], retry_failed: bool) -> int:
        where, params = scope
        with self.conn.transaction():
            cur = self.conn.execute(
                f"UPDATE files f SET visual_status = 'pending' WHERE {where} AND ("
                f"(f.visual_status = 'embedded' AND {_VECTOR_MODEL} IS DISTINCT FROM %(model)s)"
                " OR (%(retry)s AND f.visual_status = 'failed'))",
                {**params, "model": self.clip.model_id, "retry": retry_failed},
            )
            return cur.rowcount

    def _batch(self, scope: tuple[str, dict[str, Any]], size: int, report: VisualReport) -> bool:
        """Claim, decode, embed and store one batch in one transaction; False when nothing is left."""
        where, params = scope
        with self.conn.transaction():
            rows = self.conn.execute(
                f"SELECT f.id, f.path, f.asset_type, v.duration_s FROM files f LEFT JOIN videos v ON v.file_id = f.id"
                f" WHERE f.visual_status = 'pending' AND f.status = 'indexed' AND {where}"
                " ORDER BY f.id LIMIT %(size)s FOR UPDATE OF f SKIP LOCKED",
                {**params, "size": size},
            ).fetchall()
            if not rows:
                return False
            items = [_Item(r["id"], r["path"], r["asset_type"], r["duration_s"]) for r in rows]
            for item in items:
                self._load(item)
            self._embed(items)
            for item in items:
                self._store(item, report)
                self.progress(item.path, None)
        return True

    def _load(self, item: _Item) -> None:
        size = self.clip.image_size
        try:
            if item.asset_type == "blend":
                row = self.conn.execute("SELECT data FROM thumbnails WHERE file_id = %s", (item.id,)).fetchone()
                if row is None:
                    raise ExtractionError("the .blend has no stored preview thumbnail")
                pictures, item.times = [load_picture_bytes(bytes(row["data"]), size)], []
            elif item.path.startswith("s3://") and item.path not in self.local_files:
                raise ExtractionError("S3 objects are embedded by the ingestion worker, not from this machine")
            elif item.asset_type == "video":
                local = self.local_files.get(item.path, Path(item.path))
                frames = load_keyframes(local, item.duration_s, self.interval_s, self.max_frames, size)
                pictures, item.times = [f.image for f in frames], [f.time_s for f in frames]
            else:
                pictures, item.times = [load_image(self.local_files.get(item.path, Path(item.path)), size)], []
            item.pixels = np.stack([preprocess_one(p, size) for p in pictures])
        except ExtractionError as exc:
            item.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one odd file must not stop a library-wide pass
            log.debug("visual load crashed on %s", item.path, exc_info=True)
            item.error = f"cannot decode pixels: {type(exc).__name__}: {exc}"

    def _embed(self, items: list[_Item]) -> None:
        ready = [item for item in items if item.pixels is not None]
        if not ready:
            return
        vectors = self.clip.encode_pixels(np.concatenate([item.pixels for item in ready]))
        start = 0
        for item in ready:
            count = len(item.pixels)
            item.vectors, item.pixels, start = vectors[start : start + count], None, start + count

    def _store(self, item: _Item, report: VisualReport) -> None:
        try:
            with self.conn.transaction():  # a savepoint: one bad row fails only its own asset
                if item.error is not None:
                    _store_failure(self.conn, item.id, item.error)
                else:
                    _store_vectors(self.conn, item, self.clip.model_id)
        except psycopg.Error as exc:
            if self.conn.broken:
                raise
            item.error = f"database rejected it: {exc}"
        if item.error is not None:
            report.failed.append(VisualFailure(item.path, item.error))
        else:
            report.embedded += 1
            report.pictures += len(item.vectors)


def pending_count(conn: psycopg.Connection, roots: Iterable[Path | str] | None = None) -> int:
    """How many assets wait for a visual embedding (stale ones count once run has marked them)."""
    where, params = _scope(roots)
    with conn.transaction():  # its own transaction, or a savepoint inside the caller's: never commits theirs
        row = conn.execute(
            f"SELECT count(*) AS n FROM files f WHERE f.visual_status = 'pending' AND f.status = 'indexed' AND {where}",
            params,
        ).fetchone()
    return int(row["n"])


def _store_vectors(conn: psycopg.Connection, item: _Item, model: str) -> None:
    vectors = item.vectors
    assert vectors is not None
    if item.asset_type == "video":
        conn.execute("DELETE FROM video_keyframes WHERE file_id = %s", (item.id,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO video_keyframes (file_id, frame_index, time_s, visual_embedding, visual_model)"
                " VALUES (%s, %s, %s, %s, %s)",
                [(item.id, n, t, vec, model) for n, (t, vec) in enumerate(zip(item.times, vectors, strict=True))],
            )
        pooled = vectors.mean(axis=0)
        vector = (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)
    else:
        vector = vectors[0]
    table = TYPE_TABLES[item.asset_type][0]
    conn.execute(
        sql.SQL("UPDATE {} SET visual_embedding = %s, visual_model = %s WHERE file_id = %s").format(
            sql.Identifier(table)),
        (vector, model, item.id),
    )
    conn.execute(
        "UPDATE files SET visual_status = 'embedded', metadata_json = metadata_json - 'visual_error' WHERE id = %s",
        (item.id,),
    )


def _store_failure(conn: psycopg.Connection, file_id: int, reason: str) -> None:
    conn.execute(
        "UPDATE files SET visual_status = 'failed', metadata_json = metadata_json || %s WHERE id = %s",
        (Jsonb({"visual_error": reason[:500]}), file_id),
    )


# The model of an asset's stored vector, whichever type table holds it.
_VECTOR_MODEL = (
    "COALESCE((SELECT visual_model FROM images WHERE file_id = f.id),"
    " (SELECT visual_model FROM videos WHERE file_id = f.id),"
    " (SELECT visual_model FROM blend_files WHERE file_id = f.id))"
)


def _scope(roots: Iterable[Path | str] | None) -> tuple[str, dict[str, Any]]:
    """A condition on ``f.path`` limiting the pass to files under ``roots`` (all files when None)."""
    if roots is None:
        return "TRUE", {}
    paths = [str(r) if str(r).startswith("s3://") else str(absolute(Path(r))) for r in roots]
    return (
        "(f.path = ANY(%(scope_paths)s) OR EXISTS (SELECT 1 FROM unnest(%(scope_prefixes)s::text[]) p"
        " WHERE starts_with(f.path, p)))",
        {"scope_paths": paths, "scope_prefixes": [p.rstrip("/") + "/" for p in paths]},
    )
