"""Ingest from S3: one object at a time, driven by S3 event notifications (the SQS worker) or by a
bucket listing (``cgchat ingest s3://bucket/prefix``, ``cgchat enqueue``).

An object goes through exactly the local pipeline's steps (extract → describe → embed → store, then
CLIP when a model is installed); its asset path is ``s3://bucket/key``. How it is read:

- most objects: downloaded whole to a temporary file, hashed (``files.sha256``) on the way;
- videos of ``S3_RANGE_READ_MIN_MB`` or more: read in place with range requests (FFmpeg fetches the
  container's index and the keyframes it seeks to), never downloaded whole. Their ``sha256`` is S3's
  full-object SHA-256 checksum when the upload stored one, else NULL (unknown), and the metadata
  records how many bytes were read;
- objects that cannot be read in ranges and would not fit the temporary directory's free space (or
  are over ``S3_DOWNLOAD_MAX_MB``): indexed from their name, path and size only, with the reason in
  the metadata, rather than filling the worker's disk and failing forever.
 Ordering and duplicates are settled per key with S3's ``sequencer`` (table
``s3_objects``): an event older than the last one applied is dropped, so redeliveries change
nothing and a late "created" cannot resurrect a deleted asset. Events from a listing carry no
sequencer; they re-index an object only when its ETag changed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote_plus

import psycopg

from cgchat.ingest import store
from cgchat.ingest.classify import asset_type_of, extension_of, mime_type_of
from cgchat.ingest.describe import describe
from cgchat.ingest.extractors import Extraction, ExtractionError
from cgchat.ingest.pipeline import extract_file
from cgchat.models.text_encoder import TextEncoder
from cgchat.services.s3 import MISSING_CODES, error_code
from cgchat.services.s3_ranges import ObjectChanged, S3RangeReader
from cgchat.settings import get_settings
from cgchat.tokens import trigrams

log = logging.getLogger(__name__)

MB = 1 << 20


class PermanentFailure(Exception):
    """The object itself is the problem (corrupt, unreadable): retrying cannot help. The worker sends
    its message to the dead-letter queue with this reason instead of retrying."""


@dataclass(slots=True, frozen=True)
class S3Event:
    bucket: str
    key: str
    kind: str  # "created" | "removed"
    sequencer: str | None = None  # None: from a listing (backfill), not from S3 itself
    etag: str | None = None
    version_id: str | None = None
    size: int | None = None  # from the notification or listing; None: unknown until read

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_notification(body: str | dict[str, Any]) -> list[S3Event]:
    """The S3 events in one SQS message body (an S3 event notification). S3's test event → []."""
    message = json.loads(body) if isinstance(body, str) else body
    if not isinstance(message, dict):
        raise PermanentFailure("message body is not a JSON object")
    if message.get("Event") == "s3:TestEvent":
        return []
    events = []
    for record in message.get("Records") or []:
        name = str(record.get("eventName", ""))
        if not name.startswith(("ObjectCreated:", "ObjectRemoved:")):
            continue
        s3 = record.get("s3") or {}
        obj = s3.get("object") or {}
        try:
            bucket, key = s3["bucket"]["name"], unquote_plus(obj["key"])  # keys arrive URL-encoded
        except (KeyError, TypeError) as exc:
            raise PermanentFailure(f"S3 record without bucket/key: {exc}") from exc
        events.append(S3Event(bucket, key, "created" if name.startswith("ObjectCreated:") else "removed",
                              obj.get("sequencer"), (obj.get("eTag") or "").strip('"') or None, obj.get("versionId"),
                              _size(obj.get("size"))))
    return events


def notification(bucket: str, key: str, etag: str | None = None, size: int | None = None) -> dict[str, Any]:
    """A listing's object as an S3-shaped "created" notification without a sequencer (cgchat enqueue)."""
    from urllib.parse import quote_plus

    obj = {"key": quote_plus(key, safe="/"), "eTag": etag, "size": size}
    return {"Records": [{"eventSource": "cgchat:backfill", "eventName": "ObjectCreated:Backfill",
                         "s3": {"bucket": {"name": bucket}, "object": obj}}]}


def _size(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def sequencer_is_newer(candidate: str | None, stored: str | None) -> bool:
    """S3's rule: left-pad the shorter hex string with zeros, then compare as strings."""
    if candidate is None or stored is None:
        return True
    width = max(len(candidate), len(stored))
    return candidate.upper().rjust(width, "0") > stored.upper().rjust(width, "0")


def list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents") or []:
            if not obj["Key"].endswith("/"):  # "folder" placeholders
                yield obj


class S3Ingestor:
    def __init__(self, conn: psycopg.Connection, encoder: TextEncoder, s3: Any, clip: Any = None,
                 range_read_min_bytes: int | None = None, download_max_bytes: int | None = None):
        self.conn = conn
        self.encoder = encoder
        self.s3 = s3
        self.clip = clip
        settings = get_settings()
        self.range_read_min_bytes = range_read_min_bytes or settings.s3_range_read_min_mb * MB
        self.download_max_bytes = download_max_bytes or (settings.s3_download_max_mb or 0) * MB or None

    def apply(self, event: S3Event) -> str:
        """Apply one event; returns what happened: indexed, unchanged, stale, gone, deleted.

        Raises PermanentFailure for an object that cannot be read as what it claims to be."""
        if _hidden(event.key):
            return "ignored"
        if event.kind == "removed":
            return self._remove(event)
        current = self._stored(event)
        if current is not None and _superseded(event, current, "present"):
            return "stale"
        if current is not None and event.sequencer is None and current["state"] == "present" and \
                event.etag and event.etag == current["etag"] and self._indexed(event.uri):
            return "unchanged"
        started = self._now()
        if event.size is not None and self._read_in_place(event.key, event.size):
            return self._index_in_place(event, started)
        workdir = Path(tempfile.mkdtemp(prefix="cgchat-s3-"))
        try:
            local = workdir / (PurePosixPath(event.key).name or "object")
            head = self._download(event, local)
            if head is None:
                return "gone"  # deleted (or overwritten) since: its own event will follow
            return self._index(event, local, head, started)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _read_in_place(self, key: str, size: int) -> bool:
        """Range reads for big videos; also for anything too big to download (read as name and size)."""
        big_video = asset_type_of(Path(key)) == "video" and size >= self.range_read_min_bytes
        return big_video or size > self._download_limit()[0]

    def _download_limit(self) -> tuple[int, str]:
        """The largest download allowed now, and where the limit comes from."""
        if self.download_max_bytes is not None:
            return self.download_max_bytes, "S3_DOWNLOAD_MAX_MB"
        free = shutil.disk_usage(tempfile.gettempdir()).free
        return int(free * 0.9), "the free space of the temporary directory"

    def _index_in_place(self, event: S3Event, started: Any) -> str:
        head = self._head(event)
        if head is None:
            return "gone"
        if asset_type_of(Path(event.key)) != "video":
            limit, source = self._download_limit()
            note = f"not read: {head['size'] / MB:.0f} MB is over {source} ({limit / MB:.0f} MB)"
            return self._index(event, None, head, started, Extraction(metadata={"not_read": note}, text=[note]))
        reader = S3RangeReader(self.s3, event.bucket, event.key, head["size"], version_id=head["version_id"],
                               etag=head["etag"], block_size=range_block_size(head["size"]))
        try:
            return self._index(event, reader, head, started)
        except PermanentFailure:
            if reader.error is not None:  # the read failed, not the file: changed since, or S3 trouble
                if isinstance(reader.error, ObjectChanged):
                    return "gone"
                raise reader.error from None
            raise
        finally:
            log.info("read %s in ranges: %d of %d bytes in %d requests", event.uri, reader.bytes_fetched,
                     head["size"], reader.requests)

    def _head(self, event: S3Event) -> dict[str, Any] | None:
        """The object's facts without its bytes; SHA-256 only from a full-object checksum S3 stored."""
        from botocore.exceptions import ClientError

        args = {"Bucket": event.bucket, "Key": event.key, "ChecksumMode": "ENABLED"}
        if event.version_id:
            args["VersionId"] = event.version_id
        try:
            head = self.s3.head_object(**args)
        except ClientError as exc:
            if error_code(exc) in MISSING_CODES:
                return None
            raise
        checksum = head.get("ChecksumSHA256")
        full_object = checksum and "-" not in checksum and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT"
        return {"etag": str(head.get("ETag", "")).strip('"'), "version_id": head.get("VersionId"),
                "size": int(head["ContentLength"]), "sha256": base64.b64decode(checksum).hex() if full_object else None,
                "mtime_ns": int(head["LastModified"].timestamp() * 1e9) if head.get("LastModified") else 0}

    def _stored(self, event: S3Event) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT state, sequencer, etag FROM s3_objects WHERE bucket = %s AND key = %s",
                                (event.bucket, event.key)).fetchone()
        self.conn.commit()
        return row

    def _indexed(self, uri: str) -> bool:
        row = self.conn.execute("SELECT embedding_model, status FROM files WHERE path = %s", (uri,)).fetchone()
        self.conn.commit()
        return row is not None and row["status"] == "indexed" and row["embedding_model"] == self.encoder.model_id

    def _download(self, event: S3Event, local: Path) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        args = {"Bucket": event.bucket, "Key": event.key}
        if event.version_id:
            args["VersionId"] = event.version_id
        try:
            response = self.s3.get_object(**args)
        except ClientError as exc:
            if error_code(exc) in MISSING_CODES:
                return None
            raise
        digest = hashlib.sha256()
        with local.open("wb") as out:
            for chunk in response["Body"].iter_chunks(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        return {"etag": str(response.get("ETag", "")).strip('"'), "version_id": response.get("VersionId"),
                "size": local.stat().st_size, "sha256": digest.hexdigest(),
                "mtime_ns": int(response["LastModified"].timestamp() * 1e9) if response.get("LastModified") else 0}

    def _now(self) -> Any:
        now = self.conn.execute("SELECT now() AS t").fetchone()["t"]
        self.conn.commit()
        return now

    def _index(self, event: S3Event, source: Path | S3RangeReader | None, head: dict[str, Any], started: Any,
               extraction: Extraction | None = None) -> str:
        """``source``: a downloaded copy, or a range reader over the object itself (then the
        extraction notes how much of it was read); None with a ready ``extraction``."""
        key_path = PurePosixPath("/", event.bucket, event.key)
        if extraction is None:
            try:
                extraction = extract_file(source, head["size"], name=event.key)
            except ExtractionError as exc:
                raise PermanentFailure(f"{event.uri}: {exc}") from exc
            if isinstance(source, S3RangeReader):
                extraction.metadata["s3_range_read"] = {"bytes": source.bytes_fetched, "requests": source.requests}
        asset_type = asset_type_of(Path(event.key))
        description = describe(Path(str(key_path)), Path(f"/{event.bucket}"), asset_type, extraction.text,
                               extraction.body, head["size"])
        vector = self.encoder.encode([description.text])[0]
        facts = store.FileFacts(
            path=event.uri, name=key_path.name, extension=extension_of(Path(event.key)), size_bytes=head["size"],
            mtime_ns=head["mtime_ns"], sha256=head["sha256"], mime_type=mime_type_of(Path(event.key)),
            asset_type=asset_type,
        )
        with self.conn.transaction():
            if not self._claim(event, "present", head, started):
                return "stale"  # a newer event for this key was applied while we worked
            file_id = store.write_asset(self.conn, facts, description, extraction, vector, self.encoder.model_id,
                                        trigrams(PurePosixPath(event.key).stem))
        if self.clip is not None and source is not None:
            self._embed_pictures(event.uri, source)
        log.info("indexed %s (asset %d)", event.uri, file_id)
        return "indexed"

    def _embed_pictures(self, uri: str, local: Path | S3RangeReader) -> None:
        from cgchat.ingest.visual import VisualIndexer

        report = VisualIndexer(self.conn, self.clip, local_files={uri: local}).run([uri], mark_stale=False)
        for failure in report.failed:
            log.warning("no visual embedding for %s: %s", failure.path, failure.reason)

    def _remove(self, event: S3Event) -> str:
        with self.conn.transaction():
            if not self._claim(event, "deleted", {"etag": None, "version_id": event.version_id}):
                return "stale"
            ids = [r["id"] for r in self.conn.execute("SELECT id FROM files WHERE path = %s", (event.uri,))]
            store.mark_missing(self.conn, ids)
        return "deleted"

    def _claim(self, event: S3Event, state: str, head: dict[str, Any], started: Any = None) -> bool:
        """Inside a transaction: lock the key's row and record this event, unless a newer one is there.

        A listing's event has no sequencer: it loses to any S3 event applied since it started reading."""
        self.conn.execute(
            "INSERT INTO s3_objects (bucket, key, state, updated_at) VALUES (%s, %s, %s, '-infinity')"
            " ON CONFLICT DO NOTHING",
            (event.bucket, event.key, state),
        )
        row = self.conn.execute(
            "SELECT state, sequencer, etag, updated_at > %s::timestamptz AS touched_since FROM s3_objects"
            " WHERE bucket = %s AND key = %s FOR UPDATE", (started, event.bucket, event.key)).fetchone()
        if _superseded(event, row, state, head.get("etag")):
            return False
        if event.sequencer is None and row["touched_since"]:
            return False
        self.conn.execute(
            "UPDATE s3_objects SET state = %s, sequencer = COALESCE(%s, sequencer), etag = %s, version_id = %s,"
            " updated_at = now() WHERE bucket = %s AND key = %s",
            (state, event.sequencer, head.get("etag"), head.get("version_id"), event.bucket, event.key),
        )
        return True


def _superseded(event: S3Event, stored: dict[str, Any], state: str, etag: str | None = None) -> bool:
    """Whether the stored event is this one or a later one. S3 gives every event on a key its own,
    increasing sequencer, so an equal one is a redelivery; an equal sequencer on a *different* change
    (another state or ETag: moto, the test stand-in, sends one constant sequencer) is not treated as one."""
    if not event.sequencer or not stored.get("sequencer"):
        return False
    if sequencer_is_newer(event.sequencer, stored["sequencer"]):
        return False
    if event.sequencer.upper().lstrip("0") != stored["sequencer"].upper().lstrip("0"):
        return True  # strictly older
    return stored["state"] == state and (etag or event.etag) == stored.get("etag")


def range_block_size(size: int) -> int:
    """A 64th of the object, between 64 KiB and 1 MiB: few requests for big files, little waste for
    the short reads FFmpeg makes around each seek."""
    return min(MB, max(64 * 1024, size // 64))


def _hidden(key: str) -> bool:
    """Skipped like the local scanner skips them: dot-files and folders (.DS_Store, .git/...)."""
    return any(part.startswith(".") for part in key.split("/") if part) or key.endswith("/")

