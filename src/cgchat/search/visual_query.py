"""The CLIP query vector of a visual search: from words, from a picture, or from an indexed asset.

All three land in the same space as the stored image vectors, so one retriever serves text→image
("red sports car at night"), image→image (an uploaded reference) and "more like this asset".
"""

from __future__ import annotations

import numpy as np
import psycopg

from cgchat.models.clip_encoder import INSTALL_HINT, ClipEncoder, ClipNotInstalled, get_clip_encoder

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 100_000_000


class VisualQueryError(ValueError):
    """The picture or asset given as a query cannot be used; the message says why."""


class VisualUnavailable(RuntimeError):
    """No visual model is installed: the message names the install command."""


def visual_encoder() -> ClipEncoder:
    try:
        return get_clip_encoder()
    except ClipNotInstalled as exc:
        raise VisualUnavailable(
            f"visual search needs a CLIP model and none is installed; {INSTALL_HINT}. Details: {exc}"
        ) from exc


def text_vector(clip: ClipEncoder, text: str) -> np.ndarray:
    return clip.encode_texts([text])[0]


def image_vector(clip: ClipEncoder, data: bytes) -> np.ndarray:
    """The vector of an encoded picture (PNG, JPEG, WebP, TIFF, ...), checked before decoding."""
    from cgchat.ingest.extractors.base import ExtractionError
    from cgchat.ingest.pictures import load_picture_bytes

    if not data:
        raise VisualQueryError("the query image is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise VisualQueryError(f"the query image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES}")
    try:
        picture = load_picture_bytes(data, clip.image_size, max_pixels=MAX_IMAGE_PIXELS)
    except ExtractionError as exc:
        raise VisualQueryError(f"the query image cannot be read: {exc}") from exc
    return clip.encode_images([picture])[0]


def asset_vector(conn: psycopg.Connection, clip: ClipEncoder, asset_id: int) -> np.ndarray:
    """The stored vector of an indexed asset (a video's pooled vector), for "more like this"."""
    row = conn.execute(
        "SELECT f.asset_type, f.visual_status, COALESCE(i.visual_embedding, v.visual_embedding, b.visual_embedding) AS vec,"
        " COALESCE(i.visual_model, v.visual_model, b.visual_model) AS model FROM files f"
        " LEFT JOIN images i ON i.file_id = f.id LEFT JOIN videos v ON v.file_id = f.id"
        " LEFT JOIN blend_files b ON b.file_id = f.id WHERE f.id = %s",
        (asset_id,),
    ).fetchone()
    if row is None:
        raise VisualQueryError(f"no asset with id {asset_id}")
    if row["asset_type"] not in ("image", "video", "blend"):
        raise VisualQueryError(f"asset {asset_id} is a {row['asset_type']}, which has no picture to compare")
    if row["vec"] is None or row["model"] != clip.model_id:
        state = row["visual_status"] or "none"
        raise VisualQueryError(
            f"asset {asset_id} has no visual embedding from {clip.model_id} yet (status: {state}); "
            "run: cgchat ingest --visual"
        )
    return np.asarray(row["vec"].to_numpy(), dtype=np.float32)
