"""Which extractor reads which file, by extension. Extractor modules load only when first needed."""

from __future__ import annotations

import importlib
from pathlib import Path

from cgchat.ingest.extractors.base import Dependency, Extraction, ExtractionError, Extractor

# extension -> "module:function" under cgchat.ingest.extractors
_BY_EXTENSION: dict[str, str] = {
    **{ext: "image:extract_image" for ext in ("png", "jpg", "jpeg", "tif", "tiff", "tga", "bmp", "gif", "webp", "psd", "dds")},
    "exr": "exr:extract_exr",
    **{ext: "video:extract_video" for ext in ("mp4", "mov", "m4v", "mkv", "avi", "webm", "mxf", "mpg", "mpeg")},
    **{ext: "blend:extract_blend" for ext in ("blend", "blend1")},
    **{ext: "mesh:extract_mesh" for ext in ("gltf", "glb", "obj")},
    "fbx": "fbx:extract_fbx",
    **{ext: "usd:extract_usd" for ext in ("usd", "usda", "usdc", "usdz")},
    **{
        ext: "text:extract_text"
        for ext in ("txt", "md", "rst", "csv", "tsv", "json", "yaml", "yml", "toml", "xml", "log", "py", "mel", "nk", "osl", "glsl")
    },
}


def extractor_for(path: Path) -> Extractor | None:
    """The extractor for this file's extension, or None (generic metadata only)."""
    target = _BY_EXTENSION.get(path.suffix.lower().lstrip("."))
    if target is None:
        return None
    module_name, func = target.split(":")
    module = importlib.import_module(f"cgchat.ingest.extractors.{module_name}")
    return getattr(module, func)


__all__ = ["Dependency", "Extraction", "ExtractionError", "Extractor", "extractor_for"]
