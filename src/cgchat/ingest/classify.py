"""Asset type and MIME type from a file name: cheap, and the same answer every time."""

from __future__ import annotations

import mimetypes
from pathlib import Path

ASSET_TYPES = ("image", "video", "blend", "model", "document", "other")

_TYPE_BY_EXTENSION = {
    **dict.fromkeys(("png", "jpg", "jpeg", "tif", "tiff", "tga", "bmp", "gif", "webp", "psd", "dds", "exr", "hdr"), "image"),
    **dict.fromkeys(("mp4", "mov", "m4v", "mkv", "avi", "webm", "mxf", "mpg", "mpeg"), "video"),
    **dict.fromkeys(("blend", "blend1"), "blend"),
    **dict.fromkeys(("gltf", "glb", "obj", "fbx", "usd", "usda", "usdc", "usdz", "abc", "ply", "stl", "3ds"), "model"),
    **dict.fromkeys(
        ("txt", "md", "rst", "csv", "tsv", "json", "yaml", "yml", "toml", "xml", "log", "py", "mel", "nk", "osl",
         "glsl", "pdf", "doc", "docx", "xls", "xlsx", "html"),
        "document",
    ),
}

_MIME_OVERRIDES = {
    "blend": "application/x-blender",
    "blend1": "application/x-blender",
    "exr": "image/x-exr",
    "hdr": "image/vnd.radiance",
    "tga": "image/x-tga",
    "dds": "image/vnd-ms.dds",
    "psd": "image/vnd.adobe.photoshop",
    "gltf": "model/gltf+json",
    "glb": "model/gltf-binary",
    "obj": "model/obj",
    "fbx": "application/vnd.autodesk.fbx",
    "usd": "model/vnd.usd",
    "usda": "model/vnd.usda",
    "usdc": "model/vnd.usd",
    "usdz": "model/vnd.usdz+zip",
    "abc": "application/x-alembic",
    "mxf": "application/mxf",
    "nk": "text/x-nuke",
    "md": "text/markdown",
    "csv": "text/csv",
}


def extension_of(path: Path) -> str:
    return path.suffix.lower().lstrip(".")


def asset_type_of(path: Path) -> str:
    return _TYPE_BY_EXTENSION.get(extension_of(path), "other")


def mime_type_of(path: Path) -> str:
    ext = extension_of(path)
    if ext in _MIME_OVERRIDES:
        return _MIME_OVERRIDES[ext]
    guessed, _ = mimetypes.guess_type(path.name, strict=False)
    return guessed or "application/octet-stream"
