"""Ingest: scan → skip what is unchanged → extract → describe → embed → store, one file at a time.

Unchanged files cost one ``stat`` (size + mtime), or one hash when only the mtime moved. Changed
files are extracted and embedded in small batches (the encoder is much faster per text in
batches) and then written one transaction each, so a failure touches only its own file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import psycopg

from cgchat.ingest import store
from cgchat.ingest.classify import asset_type_of, extension_of, mime_type_of
from cgchat.ingest.describe import Description, describe
from cgchat.ingest.extractors import Extraction, ExtractionError, extractor_for
from cgchat.ingest.scan import absolute, iter_files
from cgchat.models.text_encoder import TextEncoder
from cgchat.tokens import trigrams

log = logging.getLogger(__name__)

BATCH_SIZE = 32


@dataclass(slots=True)
class Skipped:
    path: str
    reason: str


class DatabaseFull(RuntimeError):
    """The database cannot take more rows (disk full, out of memory: SQLSTATE class 53). No file's fault,
    so the run stops instead of extracting every file left only to list each one as rejected."""


@dataclass(slots=True)
class IngestReport:
    scanned: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    missing: int = 0
    pruned: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.skipped else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "scanned": self.scanned, "added": self.added, "updated": self.updated, "unchanged": self.unchanged,
            "missing": self.missing, "pruned": self.pruned, "seconds": round(self.seconds, 3),
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
        }


@dataclass(slots=True)
class _Work:
    path: Path
    root: Path
    stat: os.stat_result
    sha256: str
    existed: bool


# Called with (path just handled or None, how many files in total or None when unknown).
Progress = Callable[[Path | None, int | None], None]


class Ingestor:
    def __init__(self, conn: psycopg.Connection, encoder: TextEncoder, progress: Progress | None = None):
        self.conn = conn
        self.encoder = encoder
        self.progress = progress or (lambda _path, _total: None)

    def run(self, roots: Iterable[Path], prune: bool = False) -> IngestReport:
        report = IngestReport()
        started = time.perf_counter()
        for root in roots:
            self._ingest_root(absolute(root), prune, report)
        report.seconds = time.perf_counter() - started
        return report

    def _ingest_root(self, root: Path, prune: bool, report: IngestReport) -> None:
        known = self._known_under(root)
        files = list(iter_files(root))
        self.progress(None, len(files))
        seen: set[str] = set()
        pending: list[_Work] = []
        for path in files:
            report.scanned += 1
            seen.add(str(path))
            work = self._triage(path, root, known.get(str(path)), report)
            if work is not None:
                pending.append(work)
                if len(pending) >= BATCH_SIZE:
                    self._index_batch(pending, report)
                    pending = []
            else:
                self.progress(path, None)
        self._index_batch(pending, report)
        self._handle_gone(known, seen, prune, report)

    def _known_under(self, root: Path) -> dict[str, dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT id, path, size_bytes, mtime_ns, sha256, status, embedding_model FROM files"
            " WHERE path = %(root)s OR starts_with(path, %(prefix)s)",
            {"root": str(root), "prefix": str(root).rstrip(os.sep) + os.sep},
        ).fetchall()
        self.conn.commit()
        return {row["path"]: row for row in rows}

    def _triage(self, path: Path, root: Path, row: dict[str, Any] | None, report: IngestReport) -> _Work | None:
        """None when the file needs no (re)indexing; else the work to do."""
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:
            report.skipped.append(Skipped(os.fsdecode(path), "file name is not valid UTF-8; rename it"))
            return None
        try:
            st = path.stat()
            current_model = row is not None and row["embedding_model"] == self.encoder.model_id
            if row and current_model and row["status"] == "indexed" and (row["size_bytes"], row["mtime_ns"]) == (st.st_size, st.st_mtime_ns):
                report.unchanged += 1
                return None
            digest = _sha256(path)
        except OSError as exc:
            report.skipped.append(Skipped(str(path), f"cannot read: {exc.strerror or exc}"))
            return None
        if row and current_model and row["sha256"] == digest:
            store.touch(self.conn, str(path), st.st_mtime_ns)
            report.unchanged += 1
            return None
        return _Work(path, root, st, digest, existed=row is not None)

    def _index_batch(self, batch: list[_Work], report: IngestReport) -> None:
        prepared: list[tuple[_Work, Extraction, Description]] = []
        for work in batch:
            try:
                extraction = self._extract(work.path, work.stat.st_size)
            except ExtractionError as exc:
                report.skipped.append(Skipped(str(work.path), str(exc)))
                self.progress(work.path, None)
                continue
            description = describe(work.path, work.root, asset_type_of(work.path), extraction.text, extraction.body)
            prepared.append((work, extraction, description))
        if not prepared:
            return
        vectors = self.encoder.encode([d.text for _, _, d in prepared])
        for (work, extraction, description), vector in zip(prepared, vectors, strict=True):
            self._write(work, extraction, description, vector, report)
            self.progress(work.path, None)

    def _extract(self, path: Path, size: int) -> Extraction:
        return extract_file(path, size)

    def _write(self, work: _Work, extraction: Extraction, description: Description, vector: Any, report: IngestReport) -> None:
        facts = store.FileFacts(
            path=str(work.path), name=work.path.name, extension=extension_of(work.path),
            size_bytes=work.stat.st_size, mtime_ns=work.stat.st_mtime_ns, sha256=work.sha256,
            mime_type=mime_type_of(work.path), asset_type=asset_type_of(work.path),
        )
        try:
            store.write_asset(self.conn, facts, description, extraction, vector, self.encoder.model_id,
                              trigrams(work.path.stem))
        except psycopg.Error as exc:
            if self.conn.closed or self.conn.broken:
                raise
            if (exc.sqlstate or "").startswith("53"):  # insufficient resources: disk full, out of memory
                raise DatabaseFull(f"the database has no room for more ({exc.diag.message_primary or exc}); "
                                   f"{report.added + report.updated} files were indexed and are kept") from exc
            report.skipped.append(Skipped(str(work.path), f"database rejected it: {exc}".strip()))
            return
        if work.existed:
            report.updated += 1
        else:
            report.added += 1

    def _handle_gone(self, known: dict[str, dict[str, Any]], seen: set[str], prune: bool, report: IngestReport) -> None:
        gone = [row for path, row in known.items() if path not in seen]
        if prune:
            store.delete_assets(self.conn, [row["id"] for row in gone])
            report.pruned += len(gone)
        else:
            newly = [row["id"] for row in gone if row["status"] != "missing"]
            store.mark_missing(self.conn, newly)
            report.missing += len(newly)


def extract_file(source: Path | BinaryIO, size: int, name: str | None = None) -> Extraction:
    """Run the extractor for ``source``, chosen by ``name``'s extension when given (an S3 object in a
    temp file). A seekable stream (an S3 range reader) only for videos: the one format read from
    streams. Raises ExtractionError, also for a library's crash on one odd file."""
    if size == 0:
        return Extraction(metadata={"empty": True}, text=["empty file (0 bytes)"])
    named = Path(name) if name else source
    if not isinstance(named, Path):
        raise TypeError("extract_file needs a name for a stream")
    extractor = extractor_for(named)
    if extractor is None:
        return Extraction()
    try:
        return extractor(source)
    except ExtractionError:
        raise
    except Exception as exc:  # a library bug on one odd file must not stop a 100k-file run
        log.debug("extractor crashed on %s", named, exc_info=True)
        raise ExtractionError(f"could not read {extension_of(named) or 'file'} contents: {type(exc).__name__}: {exc}") from exc


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
