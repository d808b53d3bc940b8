"""The pictures an asset is seen as: what CLIP embeds and what a thumbnail shows.

- image: the image itself (EXR renders tone-mapped to 8-bit sRGB, see extractors/exr.py);
- video: keyframes sampled evenly over the duration (one per ``interval_s``, at least one, at most
  ``max_frames``), each at the middle of its slice so a fade-in/out at the ends is not what we see;
- .blend: the preview thumbnail Blender embedded when it saved the file (stored at ingest).

Very large images are first shrunk by an integer box filter to at most ~4x the model's input, which
costs almost nothing in quality (CLIP then resizes to 224 px anyway) and avoids running bicubic
over 100 megapixels.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from cgchat.ingest.extractors.base import ExtractionError
from cgchat.ingest.extractors.video import av_input

# Shrink (box, integer factor) when the short side is more than this many times the model input.
PRESHRINK_FACTOR = 4


@dataclass(slots=True)
class Keyframe:
    index: int
    time_s: float
    image: Image.Image


def keyframe_times(duration_s: float | None, interval_s: float = 2.0, max_frames: int = 16) -> list[float]:
    """Evenly spaced sample times: the middle of each of N equal slices, N = duration / interval."""
    if not duration_s or duration_s <= 0 or not math.isfinite(duration_s):
        return [0.0]
    count = max(1, min(max_frames, math.ceil(duration_s / interval_s)))
    step = duration_s / count
    return [round((i + 0.5) * step, 3) for i in range(count)]


def load_image(path: Path, min_side: int = 224) -> Image.Image:
    """An image file as a Pillow image CLIP's preprocessing accepts (any mode; EXR tone-mapped)."""
    if path.suffix.lower() == ".exr":
        from cgchat.ingest.extractors.exr import exr_preview_rgb

        return exr_preview_rgb(path, max_size=min_side * PRESHRINK_FACTOR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(path)
            if image.format == "JPEG":  # decode at reduced scale straight from the DCT: 8x faster on a 8K plate
                image.draft(image.mode, (min_side * PRESHRINK_FACTOR, min_side * PRESHRINK_FACTOR))
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ExtractionError(f"cannot decode image pixels: {exc}") from exc
    return _preshrink(image, min_side)


def load_picture_bytes(data: bytes, min_side: int = 224, max_pixels: int | None = None) -> Image.Image:
    """An encoded image (a stored thumbnail, an upload) as a Pillow image.

    ``max_pixels``: refuse larger pictures before decoding them (uploads: a 20 KB PNG can claim
    144 megapixels). Checked here rather than through Pillow's global limit, which ingest shares."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
            if max_pixels is not None and image.width * image.height > max_pixels:
                raise ExtractionError(
                    f"the picture is {image.width}x{image.height}; at most {max_pixels // 1_000_000} megapixels")
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ExtractionError(f"not a readable image: {exc}") from exc
    return _preshrink(image, min_side)


def load_keyframes(path: Path | BinaryIO, duration_s: float | None, interval_s: float = 2.0, max_frames: int = 16,
                   min_side: int = 224) -> list[Keyframe]:
    """The frames at ``keyframe_times``; raises ExtractionError when none can be decoded."""
    return load_frames(path, keyframe_times(duration_s, interval_s, max_frames), min_side)


def load_frames(path: Path | BinaryIO, times: list[float], min_side: int = 224) -> list[Keyframe]:
    """Decode the frames at ``times`` (seconds, ascending): seek to the nearest earlier keyframe, then
    decode forward to the wanted time. Raises ExtractionError when no frame can be decoded."""
    import av

    frames: list[Keyframe] = []
    try:
        with av.open(av_input(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise ExtractionError("no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, wanted in enumerate(times):
                image = _frame_at(container, stream, wanted)
                if image is not None:
                    frames.append(Keyframe(index, wanted, _preshrink(image, min_side)))
    except av.FFmpegError as exc:
        if not frames:
            raise ExtractionError(f"cannot decode video frames: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise ExtractionError(f"cannot decode video frames: {exc}") from exc
    if not frames:
        raise ExtractionError("no decodable video frame")
    return frames


def _frame_at(container, stream, wanted: float) -> Image.Image | None:  # noqa: ANN001 - PyAV types
    """The first frame at or after ``wanted`` seconds (the last one decoded if the clip ends first)."""
    if wanted > 0 and stream.time_base:
        container.seek(int(wanted / stream.time_base), stream=stream, backward=True, any_frame=False)
    last = None
    for frame in container.decode(stream):
        last = frame
        if frame.time is None or frame.time + 1e-6 >= wanted:
            break
    return last.to_image() if last is not None else None


def _preshrink(image: Image.Image, min_side: int) -> Image.Image:
    factor = min(image.size) // (min_side * PRESHRINK_FACTOR)
    if factor >= 2 and image.mode in ("RGB", "RGBA", "L", "LA"):
        return image.reduce(factor)
    return image


def thumbnail_jpeg(image: Image.Image, size: int = 256) -> bytes:
    """A small JPEG for UIs (alpha composited over white, like the preview CLIP saw)."""
    from cgchat.models.clip_preprocess import to_rgb

    thumb = to_rgb(image).copy()
    thumb.thumbnail((size, size))
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=85)
    return out.getvalue()
