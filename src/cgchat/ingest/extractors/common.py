"""Helpers shared by the 3D-model extractors (mesh, fbx, usd) and exr, so their rows and errors agree.

- ``guarded``: only ExtractionError escapes an extractor.
- ``model_row``: every ``models_3d`` column present, None when unknown.
- ``local_dependency``: a referenced path resolved against the referencing file, never fetched.
"""

from __future__ import annotations

import functools
import glob
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

from .base import Dependency, ExtractionError

_F = TypeVar("_F", bound=Callable[..., Any])
LIST_CAP = 200  # longest name list kept in metadata
_TEXT_NAMES = 12  # names shown in one search-text phrase
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # two letters or more: "C:" is a drive
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_UDIM_TOKENS = re.compile(r"<UDIM>|<UVTILE>|%\(UDIM\)d", re.IGNORECASE)


def guarded(what: str) -> Callable[[_F], _F]:
    """Make an extractor raise only ExtractionError.

    Parsing libraries raise all sorts of types on odd input (IndexError, KeyError, RuntimeError...); the
    pipeline's contract is that a bad file is reported and skipped, never that it stops an ingest run.
    """

    def wrap(func: _F) -> _F:
        @functools.wraps(func)
        def inner(path: Path, *args: Any, **kwargs: Any) -> Any:
            try:
                return func(path, *args, **kwargs)
            except ExtractionError:
                raise
            except Exception as exc:
                name = Path(path).name
                raise ExtractionError(f"{name}: cannot read {what}: {type(exc).__name__}: {exc}") from exc

        return inner  # type: ignore[return-value]

    return wrap


@guarded("model")


def require_nonempty(path: Path) -> None:
    """Raise ExtractionError for a missing or zero-byte file before any library sees it."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ExtractionError(f"{path.name}: cannot read: {exc}") from exc
    if size == 0:
        raise ExtractionError(f"{path.name}: empty file")


def read_head(path: Path, size: int) -> bytes:
    """The first ``size`` bytes: enough to recognise or describe a text-like file without reading it all."""
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except OSError as exc:
        raise ExtractionError(f"{path.name}: cannot read: {exc}") from exc


def model_row(fmt: str, **values: Any) -> dict[str, Any]:
    """A ``models_3d`` row with every column present; unknown values are None."""
    row: dict[str, Any] = {
        "format": fmt,
        "mesh_count": None,
        "face_count": None,
        "vertex_count": None,
        "material_count": None,
        "node_count": None,
        "bounds": None,
        "fps": None,
        "frame_start": None,
        "frame_end": None,
    }
    unknown = set(values) - set(row)
    if unknown:
        raise KeyError(f"not models_3d columns: {sorted(unknown)}")
    row.update(values)
    return row


def local_dependency(kind: str, raw: str, base: Path, alternatives: tuple[str, ...] = ()) -> Dependency:
    """Resolve a referenced path against the referencing file's folder and record whether it exists.

    Absolute paths are taken as they are; URLs are recorded unresolved (never fetched); UDIM/UVTILE
    patterns exist when any tile does. ``alternatives`` are other spellings the file stores (FBX keeps
    both an absolute and a relative name); the first that exists wins, else the first candidate.
    """
    candidates = []
    for value in (raw, *alternatives):
        resolved = _resolve(value, base)
        if resolved and resolved not in candidates:
            candidates.append(resolved)
    for resolved in candidates:
        if _exists(resolved):
            return Dependency(kind=kind, raw_path=raw, resolved_path=resolved, exists=True)
    return Dependency(
        kind=kind, raw_path=raw, resolved_path=candidates[0] if candidates else None, exists=False
    )


def _resolve(raw: str, base: Path) -> str | None:
    value = raw.strip()
    if not value or (_URI_SCHEME.match(value) and not value.lower().startswith("file:")):
        return None
    if value.lower().startswith("file://"):
        value = unquote(value[7:])
    if _WINDOWS_DRIVE.match(value) or value.startswith("\\\\"):
        return None  # a Windows path cannot be found on this machine as written
    value = value.replace("\\", "/")
    return os.path.normpath(value if os.path.isabs(value) else os.path.join(os.path.abspath(base), value))


def _exists(resolved: str) -> bool:
    try:
        if _UDIM_TOKENS.search(resolved):
            pattern = glob.escape(_UDIM_TOKENS.sub("\0", resolved)).replace("\0", "[0-9]" * 4)
            return bool(glob.glob(pattern))
        return os.path.isfile(resolved)
    except (OSError, ValueError):  # a NUL byte or an over-long name in the stored path
        return False


def cap(items: list[Any], limit: int = LIST_CAP) -> list[Any]:
    """The first ``limit`` items: metadata stays small for scenes with thousands of nodes."""
    return list(items[:limit])


def name_line(label: str, names: list[str], limit: int = _TEXT_NAMES) -> str:
    """A search phrase like "materials: Bark, Leaves" (long lists end in "+N more")."""
    unique = list(dict.fromkeys(n for n in names if n))
    shown = ", ".join(unique[:limit])
    return f"{label}: {shown}" + (f" (+{len(unique) - limit} more)" if len(unique) > limit else "")


def name_lines(**lists: list[str]) -> list[str]:
    """``name_line`` for each non-empty list, skipping a list identical to one already shown."""
    lines, seen = [], []
    for label, names in lists.items():
        if names and names not in seen:
            lines.append(name_line(label, names))
            seen.append(names)
    return lines


def model_summary(kind: str, row: dict[str, Any]) -> str:
    """The headline phrase, e.g. "glTF binary model, 3 meshes, 12,000 faces"."""
    parts = [kind]
    if row.get("mesh_count") is not None:
        parts.append(f"{row['mesh_count']:,} mesh" + ("" if row["mesh_count"] == 1 else "es"))
    if row.get("face_count") is not None:
        parts.append(f"{row['face_count']:,} faces")
    if row.get("fps") and row.get("frame_start") is not None and row.get("frame_end") is not None:
        parts.append(f"frames {row['frame_start']}-{row['frame_end']} at {row['fps']:g} fps")
    return ", ".join(parts)
