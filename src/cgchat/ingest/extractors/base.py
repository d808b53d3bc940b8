"""The one shape every format extractor returns.

Extractors never touch the database: they read a file and hand back plain data, so each one can be
tested on real files alone and the store decides how rows are written (one transaction per file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class ExtractionError(Exception):
    """The file could not be read as the format its name claims (truncated, corrupt, unsupported).

    The ingest pipeline reports the file as skipped and keeps going; nothing is written for it.
    """


@dataclass(slots=True)
class Dependency:
    """A file another asset needs: a texture, a linked library, a cache, a sound, a font.

    ``raw_path`` is what the asset stores (Blender's ``//`` relative form kept as-is); ``resolved_path``
    is absolute on this machine when it could be resolved; ``exists`` says whether it was found there.
    """

    kind: str  # "image" | "library" | "cache" | "sound" | "font" | "texture" | "sublayer" | "reference" | "other"
    raw_path: str
    resolved_path: str | None
    exists: bool


@dataclass(slots=True)
class Extraction:
    """What one file yielded.

    - ``metadata``: JSON-serialisable facts, stored in ``files.metadata_json`` under the format's key.
    - ``text``: short human phrases for the search description ("Cycles render engine", "objects: Dragon_Body").
    - ``type_row``: columns for the per-type table (``images``/``videos``/``blend_files``/``models_3d``),
      keys exactly as the column names; empty for formats without a table.
    - ``dependencies``: external files the asset references.
    - ``thumbnail_png``: an embedded preview (e.g. a .blend's), PNG-encoded, or None.
    - ``body``: a document's own words (first KB of a text file): searched, weighted lowest.
    """

    metadata: dict[str, Any] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)
    type_row: dict[str, Any] = field(default_factory=dict)
    dependencies: list[Dependency] = field(default_factory=list)
    thumbnail_png: bytes | None = None
    body: str = ""


class Extractor(Protocol):
    """A callable that reads one file. Raises ExtractionError for unreadable content."""

    def __call__(self, path: Path) -> Extraction: ...
