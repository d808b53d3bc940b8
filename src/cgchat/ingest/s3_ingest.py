"""Ingest from S3: one object at a time, driven by S3 event notifications (the SQS worker) or by a
bucket listing (``cgchat ingest s3://bucket/prefix``, ``cgchat enqueue``).

An object is downloaded to a temporary file and goes through exactly the local pipeline's steps
(extract → describe → embed → store, then CLIP when a model is installed); its asset path is
``s3://bucket/key``. Ordering and duplicates are settled per key with S3's ``sequencer`` (table
``s3_objects``): an event older than the last one applied is dropped, so redeliveries change
nothing and a late "created" cannot resurrect a deleted asset. Events from a listing carry no
sequencer; they re-index an object only when its ETag changed.
"""

from __future__ import annotations

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
from cgchat.ingest.extractors import ExtractionError
from cgchat.ingest.pipeline import extract_file
from cgchat.models.text_encoder import TextEncoder
from cgchat.tokens import trigrams

log = logging.getLogger(__name__)


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
                              obj.get("sequencer"), (obj.get("eTag") or "").strip('"') or None, obj.get("versionId")))
    return events


def notification(bucket: str, key: str, etag: str | None = None) -> dict[str, Any]:
    """A listing's object as an S3-shaped "created" notification without a sequencer (cgchat enqueue)."""
    from urllib.parse import quote_plus

    return {"Records": [{"eventSource": "cgchat:backfill", "eventName": "ObjectCreated:Backfill",
                         "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key, safe="/"), "eTag": etag}}}]}


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
    def __init__(self, conn: psycopg.Connection, encoder: TextEncoder, s3: Any, clip: Any = None):
        self.conn = conn
        self.encoder = encoder
        self.s3 = s3
        self.clip = clip

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
        workdir = Path(tempfile.mkdtemp(prefix="cgchat-s3-"))
        try:
            local = workdir / (PurePosixPath(event.key).name or "object")
            head = self._download(event, local)
            if head is None:
                return "gone"  # deleted (or overwritten) since: its own event will follow
            return self._index(event, local, head, started)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

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
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "NoSuchVersion", "404"):
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

    def _index(self, event: S3Event, local: Path, head: dict[str, Any], started: Any) -> str:
        key_path = PurePosixPath("/", event.bucket, event.key)
        try:
            extraction = extract_file(local, head["size"], name=event.key)
        except ExtractionError as exc:
            raise PermanentFailure(f"{event.uri}: {exc}") from exc
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
        if self.clip is not None:
            self._embed_pictures(event.uri, local)
        log.info("indexed %s (asset %d)", event.uri, file_id)
        return "indexed"

    def _embed_pictures(self, uri: str, local: Path) -> None:
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


def _hidden(key: str) -> bool:
    """Skipped like the local scanner skips them: dot-files and folders (.DS_Store, .git/...)."""
    return any(part.startswith(".") for part in key.split("/") if part) or key.endswith("/")

