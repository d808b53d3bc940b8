"""The ingestion worker: an SQS batch of S3 event notifications in, partial batch failures out.

Each message is handled on its own, so one bad file never makes the whole batch retry
(``ReportBatchItemFailures``):

- applied (or found stale/duplicate): success, the message is deleted;
- the object is unreadable (PermanentFailure): sent to the dead-letter queue at once with the
  reason as a message attribute, then reported as a success (retrying cannot help);
- anything else (database restarting, S3 throttling): reported as failed, so SQS retries it and,
  after the queue's maxReceiveCount, moves it to the dead-letter queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg

from cgchat.ingest.s3_ingest import PermanentFailure, S3Ingestor, parse_notification
from cgchat.services.s3 import S3Files
from cgchat.services.sqs import sqs_client
from cgchat.settings import Settings, get_settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BatchResult:
    outcomes: dict[str, list[str]] = field(default_factory=dict)  # message id → what happened to its events
    failed: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)

    def response(self) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": m} for m in self.failed]}


class IngestWorker:
    """Clients and models are made once per container; the database connection is re-opened when lost."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or get_settings()
        self._conn: psycopg.Connection | None = None
        self._s3: Any = None
        self._sqs: Any = None

    def handle(self, event: dict[str, Any]) -> BatchResult:
        result = BatchResult()
        for record in event.get("Records") or []:
            message_id = record.get("messageId", "")
            try:
                events = parse_notification(record["body"])
                ingestor = self._ingestor()
                result.outcomes[message_id] = [ingestor.apply(e) for e in events]
            except PermanentFailure as exc:
                log.warning("dead-lettering %s: %s", message_id, exc)
                if self._dead_letter(record, str(exc)):
                    result.dead_lettered.append(message_id)
                else:
                    result.failed.append(message_id)
            except Exception:  # noqa: BLE001 - reported to SQS for a retry; the batch goes on
                log.exception("ingest of message %s failed; SQS will retry it", message_id)
                result.failed.append(message_id)
                self._drop_broken_connection()
        return result

    def _ingestor(self) -> S3Ingestor:
        from cgchat.models.clip_encoder import ClipNotInstalled, get_clip_encoder
        from cgchat.models.text_encoder import get_text_encoder

        try:
            clip = get_clip_encoder()
        except ClipNotInstalled:
            clip = None
        return S3Ingestor(self._connection(), get_text_encoder(), self._s3_client(), clip)

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            from cgchat.db import migrate
            from cgchat.db.connection import open_connection

            migrate()
            self._conn = open_connection()
        return self._conn

    def _drop_broken_connection(self) -> None:
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            self._conn = None  # reconnecting re-reads the secret if the password was rotated
        elif self._conn is not None:
            self._conn.rollback()

    def _s3_client(self) -> Any:
        if self._s3 is None:
            self._s3 = S3Files(self.settings.aws_region, self.settings.s3_endpoint_url).client
        return self._s3

    def _dead_letter(self, record: dict[str, Any], reason: str) -> bool:
        """Send the message to the dead-letter queue with its reason; False when there is none."""
        if not self.settings.ingest_dlq_url:
            return False
        if self._sqs is None:
            self._sqs = sqs_client(self.settings)
        self._sqs.send_message(
            QueueUrl=self.settings.ingest_dlq_url, MessageBody=record["body"],
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": reason[:1000]},
                "source_message_id": {"DataType": "String", "StringValue": record.get("messageId", "") or "-"},
            },
        )
        return True
