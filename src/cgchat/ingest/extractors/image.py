"""Raster images through Pillow: PNG, JPEG, TIFF, TGA, BMP, WebP, PSD composites, DDS...

Pixels are decoded (to catch truncated files) only up to a size where that stays cheap; huge
textures are checked by header so a 16k UDIM tile does not cost a gigabyte of RAM.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, UnidentifiedImageError

from cgchat.ingest.extractors.base import Extraction, ExtractionError

_DECODE_LIMIT_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = 1_000_000_000  # studio plates and UDIMs are legitimately huge

_BIT_DEPTH = {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I": 32, "F": 32}
_EXIF_KEYS = ("Make", "Model", "Software", "DateTime", "Artist", "Copyright", "ImageDescription")


def extract_image(path: Path) -> Extraction:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                info = _describe(im)
                if im.width * im.height <= _DECODE_LIMIT_PIXELS:
                    im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ExtractionError(f"not a readable image: {exc}") from exc
    type_row = {k: info[k] for k in ("width", "height", "mode", "channels", "format", "bit_depth")}
    text = [f"{info['format']} image {info['width']}x{info['height']}", _mode_words(info)]
    if info.get("exif"):
        text.extend(f"{k} {v}" for k, v in info["exif"].items() if k in ("Software", "Artist", "ImageDescription"))
    return Extraction(metadata={"image": info}, text=[t for t in text if t], type_row=type_row)


def _describe(im: Image.Image) -> dict[str, Any]:
    bands = im.getbands()
    info: dict[str, Any] = {
        "width": im.width,
        "height": im.height,
        "mode": im.mode,
        "channels": len(bands),
        "bands": list(bands),
        "format": im.format or "unknown",
        "bit_depth": _BIT_DEPTH.get(im.mode, 8 if im.mode != "1" else 1),
        "has_alpha": "A" in bands or "transparency" in im.info,
        "frames": getattr(im, "n_frames", 1),
    }
    if "icc_profile" in im.info:
        info["icc_profile"] = True
    if dpi := im.info.get("dpi"):
        info["dpi"] = [float(d) for d in dpi]
    exif = _exif(im)
    if exif:
        info["exif"] = exif
    if im.info.get("bits") == 16 or (im.format == "PNG" and im.mode in ("I", "I;16")):
        info["bit_depth"] = 16
    return info


def _exif(im: Image.Image) -> dict[str, str]:
    try:
        raw = im.getexif()
    except Exception:  # malformed EXIF must not cost us the image
        return {}
    out = {}
    for tag, value in raw.items():
        name = ExifTags.TAGS.get(tag)
        if name in _EXIF_KEYS and isinstance(value, (str, int, float)):
            out[name] = str(value).strip("\x00 ")[:200]
    return out


def _mode_words(info: dict[str, Any]) -> str:
    words = []
    if info["has_alpha"]:
        words.append("with alpha transparency")
    if info["mode"] in ("L", "LA", "I;16", "I", "1"):
        words.append("grayscale")
    if info["mode"] == "CMYK":
        words.append("CMYK")
    if info["bit_depth"] >= 16:
        words.append(f"{info['bit_depth']}-bit")
    return ", ".join(words)
