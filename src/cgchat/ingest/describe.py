"""The words that represent an asset in search: what its path says and what its content says.

A studio path carries most of the meaning (``dragon/seq/sq010/sh010/anim/..._v001.blend``), so
project, sequence, shot, department and version are pulled out of it and written as plain words
that both the keyword index and the text embedding understand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from cgchat.tokens import words

# Folders that sit directly under a project root in common studio layouts.
_STRUCTURAL = {
    "assets", "asset", "seq", "seqs", "sequences", "shots", "shot", "review", "reviews", "docs", "doc",
    "ref", "refs", "reference", "renders", "render", "textures", "tex", "notes", "publish", "work",
    "editorial", "edit", "dailies", "plates", "lib", "library", "props", "chr", "env", "layout",
}
_DEPARTMENTS = {
    "anim", "animation", "comp", "compositing", "fx", "lighting", "lgt", "model", "modeling", "modelling",
    "rig", "rigging", "lookdev", "surfacing", "layout", "tex", "texturing", "render", "playblast",
    "matchmove", "roto", "paint", "cfx", "groom", "editorial", "review", "concept",
}
_SEQUENCE = re.compile(r"^(?:sq|seq)[_-]?(\d+)$", re.IGNORECASE)
_SHOT = re.compile(r"(?:^|[_\W])(sh|shot)[_-]?(\d{2,5})(?=$|[_\W])", re.IGNORECASE)
_VERSION = re.compile(r"(?:^|[_\W.])v(\d{1,4})(?=$|[_\W.])", re.IGNORECASE)

_TYPE_PHRASE = {
    "image": "image",
    "video": "video clip",
    "blend": "Blender scene file (.blend)",
    "model": "3D model",
    "document": "document",
    "other": "file",
}


@dataclass(slots=True)
class Description:
    """Everything search needs to know about an asset in words, split by how much each part counts."""

    text: str  # the sentence the embedding is computed from
    name_text: str  # keyword weight A
    path_text: str  # keyword weight B
    meta_text: str  # keyword weight C
    body_text: str  # keyword weight D (document contents)
    path_info: dict[str, Any] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)


def parse_path(path: Path, root: Path) -> dict[str, Any]:
    """Project / sequence / shot / department / version found in a path below an ingest root."""
    rel = _relative_parts(path, root)
    folders = rel[:-1]
    info: dict[str, Any] = {"folders": folders}
    for i, part in enumerate(folders):
        if i + 1 < len(folders) and folders[i + 1].lower() in _STRUCTURAL and "project" not in info:
            info["project"] = part
        if _SEQUENCE.match(part):
            info["sequence"] = part
        if part.lower() in _DEPARTMENTS:
            info["department"] = part
    info.setdefault("project", folders[0] if folders else root.name)
    for text in [path.name, *reversed(folders)]:
        if m := _SHOT.search(text):
            info["shot"] = f"{m.group(1).lower()}{m.group(2)}"
            break
    if m := _VERSION.search(path.stem):
        info["version"] = int(m.group(1))
        info["version_token"] = f"v{m.group(1)}"
    return info


def describe(
    path: Path, root: Path, asset_type: str, content_text: list[str], body: str = "", size_bytes: int = 0
) -> Description:
    """Build the searchable words for one asset."""
    info = parse_path(path, root)
    stem_words = " ".join(words(path.stem))
    ext = path.suffix.lower().lstrip(".")
    context = [f"project {info['project']}"]
    for key in ("sequence", "shot", "department"):
        if key in info:
            context.append(f"{key} {info[key]}")
    if "version" in info:
        context.append(f"version {info['version']}")
    folder_words = " ".join(" ".join(words(f)) for f in info["folders"])
    meta_sentence = ". ".join(t for t in content_text if t)
    text = ". ".join(
        p
        for p in (
            f"{stem_words} ({ext} {_TYPE_PHRASE[asset_type]})" if ext else f"{stem_words} ({_TYPE_PHRASE[asset_type]})",
            ", ".join(context),
            f"in {folder_words}" if folder_words else "",
            meta_sentence,
            body[:1500],
        )
        if p
    )
    tokens = sorted(set(words(path.name)) | {w for f in info["folders"] for w in words(f)})
    return Description(
        text=text,
        name_text=f"{path.name} {stem_words}",
        path_text=" ".join(info["folders"]) + " " + folder_words,
        meta_text=f"{_TYPE_PHRASE[asset_type]} {ext} {', '.join(context)}. {meta_sentence}",
        body_text=body,
        path_info=info,
        tokens=tokens,
    )


def _relative_parts(path: Path, root: Path) -> list[str]:
    """Parts of ``path`` starting at the root folder's own name (a file root keeps its parent's name)."""
    base = root if root.is_dir() else root.parent
    try:
        rel = PurePath(path).relative_to(base.parent)
    except ValueError:
        rel = PurePath(*path.parts[-4:])
    return list(rel.parts)
