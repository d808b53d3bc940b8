"""Text-like files (.txt .md .csv .json .py .usda ...): their first few KB describe them best.

Only read, never parsed as code or executed.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cgchat.ingest.extractors.base import Extraction
from cgchat.ingest.extractors.common import read_head

HEAD_BYTES = 4096


def extract_text(path: Path) -> Extraction:
    head = read_head(path, HEAD_BYTES)
    if b"\x00" in head:
        return Extraction(metadata={"text": {"binary": True}})
    content = head.decode("utf-8", errors="replace")
    if len(head) == HEAD_BYTES:  # don't end on a half character or word
        content = content.rsplit(None, 1)[0] if " " in content else content
    meta: dict[str, object] = {"head_chars": len(content), "lines": content.count("\n") + 1}
    if path.suffix.lower() in (".csv", ".tsv"):
        meta["columns"] = _csv_columns(content, "\t" if path.suffix.lower() == ".tsv" else ",")
    return Extraction(metadata={"text": meta}, body=" ".join(content.split()))


def _csv_columns(content: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader(io.StringIO(content), delimiter=delimiter), [])[:50]
    except csv.Error:
        return []
