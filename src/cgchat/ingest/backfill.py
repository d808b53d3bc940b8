"""The API server's background visual pass: fills in pending visual embeddings while it serves.

Why in the server: a CLIP model installed (or switched) after the library was indexed should not
need anyone to remember ``cgchat ingest --visual``. It holds one pooled connection only while a
batch runs, checks the installed model every poll (a switch re-embeds everything, stale vectors
stay invisible to search meanwhile), and stops between batches when the server shuts down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

import psycopg

from cgchat.ingest.visual import VisualIndexer
from cgchat.models.clip_encoder import ClipNotInstalled, get_clip_encoder

log = logging.getLogger(__name__)


class VisualBackfill:
    def __init__(self, connection: Callable[[], AbstractContextManager[psycopg.Connection]], poll_s: float):
        self.connection = connection
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cgchat-visual-backfill", daemon=True)
        self._model_seen: str | None = None
        self.passes = 0  # completed passes, for /v1/config and tests

    def start(self) -> VisualBackfill:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._one_pass()
            except Exception:  # noqa: BLE001 - a failing pass (database restart...) retries next poll
                log.exception("visual backfill pass failed; retrying in %.0f s", self.poll_s)
            self._stop.wait(self.poll_s)

    def _one_pass(self) -> None:
        try:
            clip = get_clip_encoder()
        except ClipNotInstalled:
            return
        switched = clip.model_id != self._model_seen
        with self.connection() as conn:
            report = VisualIndexer(conn, clip).run(mark_stale=switched, should_stop=self._stop.is_set)
        self._model_seen = clip.model_id
        self.passes += 1
        if report.embedded or report.failed:
            log.info("visual backfill (%s): embedded %d, failed %d, %d pending", clip.model_id, report.embedded,
                     len(report.failed), report.remaining)
