"""Video containers through PyAV (FFmpeg's libraries): MP4, MOV, MKV, AVI, WebM, MXF...

The first video frame is decoded so a file with a valid header but broken data is caught here,
at ingest, rather than by an artist opening it later. The source may be a seekable stream (an S3
object read in ranges): FFmpeg then fetches only the container's index and the frames it decodes.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

from cgchat.ingest.extractors.base import Extraction, ExtractionError


def extract_video(source: Path | BinaryIO) -> Extraction:
    import av  # deferred: FFmpeg's libraries are the heaviest import ingest has

    try:
        with av.open(av_input(source), metadata_errors="ignore") as container:
            info = _describe(container)
            if container.streams.video:
                _decode_first_frame(container)
    except av.FFmpegError as exc:
        raise ExtractionError(f"not a readable video: {exc}") from exc
    except (OSError, ValueError, IndexError, StopIteration) as exc:
        raise ExtractionError(f"not a readable video: {exc}") from exc
    if not info.get("codec"):
        raise ExtractionError("no video stream in the container")
    type_row = {k: info.get(k) for k in ("duration_s", "fps", "codec", "width", "height", "frame_count")}
    text = [
        f"{info['codec_long'] or info['codec']} video {info['width']}x{info['height']}",
        f"{_fmt_num(info['fps'])} fps" if info.get("fps") else "",
        f"{info['duration_s']:.1f} seconds" if info.get("duration_s") else "",
        "with audio" if info["audio_streams"] else "no audio",
    ]
    return Extraction(metadata={"video": info}, text=[t for t in text if t], type_row=type_row)


def av_input(source: Path | BinaryIO) -> str | BinaryIO:
    """What ``av.open`` takes: a path as text, or a stream rewound (it may have been read before)."""
    if isinstance(source, Path):
        return str(source)
    source.seek(0)
    return source


def _describe(container: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "container": container.format.name,
        "audio_streams": len(container.streams.audio),
        "tags": {str(k): str(v)[:200] for k, v in (container.metadata or {}).items()},
    }
    duration = container.duration / 1_000_000 if container.duration else None
    if container.streams.video:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * Fraction(stream.time_base))
        frames = stream.frames or (round(duration * fps) if duration and fps else None)
        info.update(
            codec=ctx.name,
            codec_long=ctx.codec.long_name if ctx.codec else None,
            width=ctx.width,
            height=ctx.height,
            fps=round(fps, 3) if fps else None,
            frame_count=frames,
            pixel_format=ctx.format.name if ctx.format else None,
            bit_rate=container.bit_rate,
        )
    if container.streams.audio:
        a = container.streams.audio[0].codec_context
        info["audio"] = {"codec": a.name, "sample_rate": a.sample_rate, "channels": a.channels}
    info["duration_s"] = round(duration, 3) if duration else None
    return info


def _decode_first_frame(container: Any) -> None:
    for _ in container.decode(video=0):
        return
    raise ExtractionError("video stream has no decodable frame")


def _fmt_num(value: float) -> str:
    return f"{value:g}"
