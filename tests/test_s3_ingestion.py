"""Scale-out ingestion on loopback: S3 → SQS → the worker's real Lambda entry point
(``lambda_function.ingest_handler``), against moto in server mode (S3 with event notifications to
SQS, a dead-letter queue with a redrive policy, Secrets Manager) and the real embedded Postgres.

``drain`` plays the part of Lambda's SQS event source mapping: it receives a batch, invokes the
handler with an SQS event, deletes what succeeded and makes the reported failures visible again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

from tests.conftest import SAMPLES, _create_database, free_port, run_cli

BUCKET = "studio-assets"
UPLOADS = {
    "dragon/assets/props/props_library_v001.blend": SAMPLES / "dragon/assets/props/props_library_v001.blend",
    "dragon/assets/env/castle/tex/brick_albedo.png": SAMPLES / "dragon/assets/env/castle/tex/brick_albedo.png",
    "dragon/review/turntables/dragon_turntable_v003.mp4": SAMPLES / "dragon/review/turntables/dragon_turntable_v003.mp4",
    "dragon/docs/shot list é.csv": next(SAMPLES.rglob("*.csv")),
}


class Aws:
    def __init__(self, endpoint: str):
        import boto3

        self.endpoint = endpoint
        self.s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)
        self.sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint)
        self.secrets = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=endpoint)
        self.dlq_url = self.sqs.create_queue(QueueName="cgchat-ingest-dlq")["QueueUrl"]
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.queue_url = self.sqs.create_queue(QueueName="cgchat-ingest", Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
            "VisibilityTimeout": "30",
        })["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.s3.create_bucket(Bucket=BUCKET)
        self.s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}],
        })
        self.purge()

    def purge(self) -> None:
        """Empty both queues (PurgeQueue is rate-limited to once a minute, so receive and delete)."""
        for url in (self.queue_url, self.dlq_url):
            while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
                for m in messages:
                    self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


@pytest.fixture(scope="module")
def aws(moto_endpoint: str) -> Aws:
    return Aws(moto_endpoint)


@pytest.fixture()
def worker_env(aws: Aws, pg_server_url: str, session_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database and the worker's environment; empty queues; a new worker per test."""
    import uuid

    import lambda_function
    from cgchat.db import migrate
    from cgchat.settings import get_settings

    for obj in aws.s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        aws.s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    aws.purge()  # the previous test's leftovers and these deletes' notifications, unprocessed
    url = _create_database(pg_server_url, f"t_s3_{uuid.uuid4().hex[:10]}")
    migrate(url)
    env = {"DATABASE_URL": url, "CGCHAT_HOME": str(session_home), "S3_ENDPOINT_URL": aws.endpoint,
           "SQS_ENDPOINT_URL": aws.endpoint, "INGEST_QUEUE_URL": aws.queue_url, "INGEST_DLQ_URL": aws.dlq_url,
           "AWS_REGION": "us-east-1", "CLIP_MODEL_DIR": str(session_home / "no-clip")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    lambda_function._WORKER = None
    yield url
    lambda_function._WORKER = None
    get_settings.cache_clear()


def drain(aws: Aws, wait: float = 1.0) -> list[dict[str, Any]]:
    """One poll of the event source mapping: receive ≤ 10, invoke, delete successes, release failures."""
    import lambda_function

    messages = aws.sqs.receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=int(wait),
                                       AttributeNames=["All"]).get("Messages", [])
    if not messages:
        return []
    event = {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                          "eventSource": "aws:sqs", "attributes": m.get("Attributes", {})} for m in messages]}
    reply = lambda_function.ingest_handler(event, None)
    failed = {f["itemIdentifier"] for f in reply["batchItemFailures"]}
    for m in messages:
        if m["MessageId"] in failed:
            aws.sqs.change_message_visibility(QueueUrl=aws.queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
        else:
            aws.sqs.delete_message(QueueUrl=aws.queue_url, ReceiptHandle=m["ReceiptHandle"])
    return [{"id": m["MessageId"], "failed": m["MessageId"] in failed, "body": m["Body"]} for m in messages]


def _drain_all(aws: Aws, rounds: int = 10) -> list[dict[str, Any]]:
    handled: list[dict[str, Any]] = []
    for _ in range(rounds):
        batch = drain(aws, wait=0.5)
        if not batch:
            break
        handled += batch
    return handled


def _dlq(aws: Aws) -> list[dict[str, Any]]:
    return aws.sqs.receive_message(QueueUrl=aws.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                   MessageAttributeNames=["All"]).get("Messages", [])


def _upload(aws: Aws, keys: dict[str, Path] = UPLOADS) -> None:
    for key, path in keys.items():
        aws.s3.upload_file(str(path), BUCKET, key)


def _rows(url: str) -> dict[str, dict[str, Any]]:
    from cgchat.db.connection import open_connection

    with open_connection(url) as conn:
        return {r["path"]: r for r in conn.execute(
            "SELECT id, path, asset_type, status, sha256, indexed_at, metadata_json FROM files").fetchall()}


def _search_paths(url: str, query: str) -> list[str]:
    from cgchat.db.connection import open_connection
    from cgchat.search import SearchRequest, search

    with open_connection(url) as conn:
        return [r.path for r in search(conn, SearchRequest(query, limit=20)).results]


def test_upload_event_worker_row(aws: Aws, worker_env: str) -> None:
    _upload(aws)
    handled = _drain_all(aws)
    assert len(handled) == len(UPLOADS) and not any(h["failed"] for h in handled)
    rows = _rows(worker_env)
    assert set(rows) == {f"s3://{BUCKET}/{key}" for key in UPLOADS}
    blend = rows[f"s3://{BUCKET}/dragon/assets/props/props_library_v001.blend"]
    assert blend["asset_type"] == "blend" and blend["status"] == "indexed"
    assert {o["name"] for o in blend["metadata_json"]["blend"]["objects"]} >= {"Barrel", "Crate", "Lantern"}
    assert blend["sha256"] == __import__("hashlib").sha256(UPLOADS["dragon/assets/props/props_library_v001.blend"]
                                                          .read_bytes()).hexdigest()
    video = rows[f"s3://{BUCKET}/dragon/review/turntables/dragon_turntable_v003.mp4"]
    assert video["asset_type"] == "video" and video["metadata_json"]["video"]["duration_s"] > 1
    assert rows[f"s3://{BUCKET}/dragon/docs/shot list é.csv"]["asset_type"] == "document"  # URL-encoded key, decoded
    assert _search_paths(worker_env, "props library")[0] == f"s3://{BUCKET}/dragon/assets/props/props_library_v001.blend"


def test_a_redelivered_message_changes_nothing(aws: Aws, worker_env: str) -> None:
    _upload(aws, {"dragon/tex/brick_albedo.png": UPLOADS["dragon/assets/env/castle/tex/brick_albedo.png"]})
    first = _drain_all(aws)
    before = _rows(worker_env)
    for _ in range(2):  # at-least-once delivery: the same notification again, twice
        aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=first[0]["body"])
    again = _drain_all(aws)
    assert len(again) == 2 and not any(h["failed"] for h in again)
    after = _rows(worker_env)
    assert after.keys() == before.keys() and all(after[p]["indexed_at"] == before[p]["indexed_at"] for p in after)


def test_a_corrupt_object_goes_to_the_dlq_with_a_reason(aws: Aws, worker_env: str) -> None:
    good = UPLOADS["dragon/assets/env/castle/tex/brick_albedo.png"]
    aws.s3.put_object(Bucket=BUCKET, Key="dragon/tex/truncated.png", Body=good.read_bytes()[:200])
    aws.s3.put_object(Bucket=BUCKET, Key="dragon/scenes/not really.blend", Body=b"BLENDER-v304 this is no blend file")
    _upload(aws, {"dragon/tex/fine.png": good})
    handled = _drain_all(aws)
    assert len(handled) == 3 and not any(h["failed"] for h in handled)  # dead-lettered, not retried
    dead = _dlq(aws)
    reasons = {unquote_plus(json.loads(m["Body"])["Records"][0]["s3"]["object"]["key"]):
               m["MessageAttributes"]["reason"]["StringValue"] for m in dead}
    assert set(reasons) == {"dragon/tex/truncated.png", "dragon/scenes/not really.blend"}
    assert reasons["dragon/tex/truncated.png"].startswith(f"s3://{BUCKET}/dragon/tex/truncated.png: not a readable image")
    assert reasons["dragon/scenes/not really.blend"].startswith(f"s3://{BUCKET}/dragon/scenes/not really.blend:")
    assert set(_rows(worker_env)) == {f"s3://{BUCKET}/dragon/tex/fine.png"}  # the good file of the batch landed


def test_a_delete_removes_the_asset_from_search(aws: Aws, worker_env: str) -> None:
    _upload(aws)
    _drain_all(aws)
    key = "dragon/assets/props/props_library_v001.blend"
    assert f"s3://{BUCKET}/{key}" in _search_paths(worker_env, "props library")
    aws.s3.delete_object(Bucket=BUCKET, Key=key)
    assert len(_drain_all(aws)) == 1
    assert _rows(worker_env)[f"s3://{BUCKET}/{key}"]["status"] == "missing"
    assert f"s3://{BUCKET}/{key}" not in _search_paths(worker_env, "props library")


def _event(kind: str, key: str, sequencer: str, etag: str = "x") -> str:
    obj = {"key": key, "sequencer": sequencer, **({"eTag": etag} if kind == "ObjectCreated:Put" else {})}
    return json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": kind,
                                    "s3": {"bucket": {"name": BUCKET}, "object": obj}}]})


def test_out_of_order_events_never_resurrect_a_deleted_asset(aws: Aws, worker_env: str) -> None:
    """Hand-written notifications with S3's real per-key sequencers, delivered through SQS out of order."""
    key = "dragon/tex/late.png"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=UPLOADS["dragon/assets/env/castle/tex/brick_albedo.png"].read_bytes())
    _drain_all(aws)  # moto's own notification
    uri = f"s3://{BUCKET}/{key}"
    assert _rows(worker_env)[uri]["status"] == "indexed"
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=_event("ObjectRemoved:Delete", key, "00A1B2C3D4E5F60002"))
    _drain_all(aws)
    assert _rows(worker_env)[uri]["status"] == "missing"
    # The create that happened *before* the delete arrives late (smaller sequencer, shorter string too).
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=_event("ObjectCreated:Put", key, "A1B2C3D4E5F60001"))
    _drain_all(aws)
    assert _rows(worker_env)[uri]["status"] == "missing"
    # A genuinely newer upload brings it back.
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=_event("ObjectCreated:Put", key, "00A1B2C3D4E5F60003"))
    _drain_all(aws)
    assert _rows(worker_env)[uri]["status"] == "indexed"


def test_transient_failures_are_retried_then_dead_lettered(aws: Aws, worker_env: str, monkeypatch) -> None:  # noqa: ANN001
    from cgchat.settings import get_settings

    port = free_port()  # nothing listens: the database is "down"
    monkeypatch.setenv("DATABASE_URL", f"postgresql://nobody@127.0.0.1:{port}/none?connect_timeout=1")
    get_settings.cache_clear()
    _upload(aws, {"dragon/tex/a.png": UPLOADS["dragon/assets/env/castle/tex/brick_albedo.png"]})
    first = drain(aws)
    assert len(first) == 1 and first[0]["failed"]  # reported as a batch item failure, not raised
    for _ in range(4):
        drain(aws, wait=0.5)
    dead = _dlq(aws)
    assert len(dead) == 1 and "reason" not in (dead[0].get("MessageAttributes") or {})  # moved by the redrive policy


def test_cli_backfill_and_enqueue(aws: Aws, worker_env: str, session_home: Path) -> None:
    from cgchat.settings import get_settings

    _upload(aws)
    aws.purge()  # forget the upload notifications: this test is about listings
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    first = run_cli("ingest", f"s3://{BUCKET}/dragon/", "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["s3"] == {"indexed": 4}
    again = run_cli("ingest", f"s3://{BUCKET}/dragon/", "--json", env=env)
    assert json.loads(again.stdout)["s3"] == {"unchanged": 4}
    assert run_cli("ingest", "s3://no-such-bucket/x", env=env).returncode == 2

    # enqueue: one message per object, handled by the worker like S3's own events.
    from cgchat.db.connection import open_connection

    with open_connection(worker_env) as conn:
        conn.execute("DELETE FROM files")
        conn.execute("DELETE FROM s3_objects")
        conn.commit()
    get_settings.cache_clear()
    sent = run_cli("enqueue", f"s3://{BUCKET}/dragon/", env=env)
    assert sent.returncode == 0 and "enqueued 4 objects" in sent.stdout, sent.stderr
    handled = _drain_all(aws)
    assert len(handled) == 4 and not any(h["failed"] for h in handled)
    assert len(_rows(worker_env)) == 4


def test_database_password_from_secrets_manager(aws: Aws, worker_env: str, monkeypatch) -> None:  # noqa: ANN001
    from psycopg.conninfo import conninfo_to_dict

    from cgchat.db.connection import database_url, forget_secret, open_connection
    from cgchat.settings import get_settings

    parts = conninfo_to_dict(worker_env)
    secret = {"username": parts["user"], "password": "", "host": parts["host"], "port": 5432, "dbname": parts["dbname"]}
    arn = aws.secrets.create_secret(Name=f"cgchat-db-{parts['dbname']}", SecretString=json.dumps(secret))["ARN"]
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("DATABASE_SECRET_ARN", arn)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", aws.endpoint)
    get_settings.cache_clear()
    forget_secret()
    url = database_url()
    assert f"dbname={parts['dbname']}" in url
    with open_connection(url) as conn:
        assert conn.execute("SELECT current_database() AS d").fetchone()["d"] == parts["dbname"]
    monkeypatch.setenv("DATABASE_SECRET_ARN", arn + "-missing")
    get_settings.cache_clear()
    from cgchat.db import DatabaseUnavailable

    with pytest.raises(DatabaseUnavailable, match="cannot read the database secret") as info:
        database_url()
    forget_secret()


def test_worker_embeds_pictures_when_clip_is_installed(aws: Aws, worker_env: str, clip_env: Path) -> None:
    import lambda_function

    lambda_function._WORKER = None
    _upload(aws, {"look/brick.png": UPLOADS["dragon/assets/env/castle/tex/brick_albedo.png"],
                  "look/turntable.mp4": UPLOADS["dragon/review/turntables/dragon_turntable_v003.mp4"]})
    _drain_all(aws)
    from cgchat.db.connection import open_connection

    with open_connection(worker_env) as conn:
        states = {r["path"]: r["visual_status"] for r in conn.execute("SELECT path, visual_status FROM files")}
        frames = conn.execute("SELECT count(*) AS n FROM video_keyframes").fetchone()["n"]
    assert set(states.values()) == {"embedded"} and frames >= 2


def test_s3_test_event_and_hidden_keys_are_ignored(aws: Aws, worker_env: str) -> None:
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=json.dumps({"Event": "s3:TestEvent", "Bucket": BUCKET}))
    aws.s3.put_object(Bucket=BUCKET, Key="dragon/.DS_Store", Body=b"\x00\x00\x00\x01Bud1")
    handled = _drain_all(aws)
    assert len(handled) == 2 and not any(h["failed"] for h in handled)
    assert _rows(worker_env) == {} and _dlq(aws) == []


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 s of 640x360 H.264 (about 5 MB), a keyframe every second, index (moov) at the end."""
    import subprocess

    out = tmp_path_factory.mktemp("video") / "dragon_flyby_v007.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=duration=40:size=640x360:rate=24",
                    "-vf", "noise=alls=30:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "1M", "-g", "24",
                    "-pix_fmt", "yuv420p", str(out)], check=True, timeout=120)
    return out


def _in_ranges(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    from cgchat.settings import get_settings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


def test_a_long_video_is_indexed_from_range_reads(aws: Aws, worker_env: str, long_video: Path, clip_env: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Over S3_RANGE_READ_MIN_MB, a video is read in place: its index, first frame and keyframes,
    a fraction of its bytes; without an S3 checksum its sha256 is unknown (NULL), not invented."""
    import lambda_function

    from cgchat.db.connection import open_connection

    _in_ranges(monkeypatch, S3_RANGE_READ_MIN_MB="1")
    lambda_function._WORKER = None
    size = long_video.stat().st_size
    _upload(aws, {"review/dragon_flyby_v007.mp4": long_video})
    handled = _drain_all(aws)
    assert len(handled) == 1 and not handled[0]["failed"]
    row = _rows(worker_env)[f"s3://{BUCKET}/review/dragon_flyby_v007.mp4"]
    assert row["status"] == "indexed" and row["sha256"] is None
    assert row["metadata_json"]["video"]["duration_s"] == pytest.approx(40, abs=0.1)
    read = row["metadata_json"]["s3_range_read"]
    assert 0 < read["bytes"] < size * 0.25, (read, size)  # the index and the first GOP, not the movie
    with open_connection(worker_env) as conn:  # keyframes decoded from ranges too, at their times
        times = [r["time_s"] for r in conn.execute(
            "SELECT k.time_s FROM video_keyframes k JOIN files f ON f.id = k.file_id ORDER BY k.time_s")]
        status = conn.execute("SELECT visual_status FROM files").fetchone()["visual_status"]
    assert status == "embedded" and len(times) == 16 and times[0] < 2 and times[-1] > 38
    assert _search_paths(worker_env, "dragon flyby")[0].endswith("dragon_flyby_v007.mp4")


def test_a_range_read_video_takes_its_sha256_from_the_s3_checksum(aws: Aws, worker_env: str, long_video: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    import lambda_function

    _in_ranges(monkeypatch, S3_RANGE_READ_MIN_MB="1")
    lambda_function._WORKER = None
    aws.s3.put_object(Bucket=BUCKET, Key="review/checked.mp4", Body=long_video.read_bytes(), ChecksumAlgorithm="SHA256")
    _drain_all(aws)
    row = _rows(worker_env)[f"s3://{BUCKET}/review/checked.mp4"]
    assert row["sha256"] == hashlib.sha256(long_video.read_bytes()).hexdigest()
    assert row["metadata_json"]["s3_range_read"]["bytes"] < long_video.stat().st_size * 0.25


def test_an_object_too_big_to_download_is_indexed_by_name_and_size(aws: Aws, worker_env: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A .blend cannot be read in ranges: over S3_DOWNLOAD_MAX_MB it is not downloaded (it could fill
    the worker's disk) but still findable, with the reason recorded."""
    import lambda_function

    _in_ranges(monkeypatch, S3_DOWNLOAD_MAX_MB="1")
    lambda_function._WORKER = None
    big = b"BLENDER-v300" + bytes(3 * 1024 * 1024)
    aws.s3.put_object(Bucket=BUCKET, Key="dragon/sets/castle_master_v012.blend", Body=big)
    handled = _drain_all(aws)
    assert len(handled) == 1 and not handled[0]["failed"] and _dlq(aws) == []
    row = _rows(worker_env)[f"s3://{BUCKET}/dragon/sets/castle_master_v012.blend"]
    assert row["status"] == "indexed" and row["asset_type"] == "blend" and row["sha256"] is None
    assert "over S3_DOWNLOAD_MAX_MB" in row["metadata_json"]["not_read"]
    assert "blend" not in row["metadata_json"]  # nothing was extracted from bytes it never read
    assert _search_paths(worker_env, "castle master")[0].endswith("castle_master_v012.blend")


def test_range_reader_reads_what_a_file_would(aws: Aws, worker_env: str, long_video: Path) -> None:
    """Random seeks and reads against the same bytes on disk, and an overwrite mid-read is noticed."""
    import random

    from cgchat.services.s3_ranges import ObjectChanged, S3RangeReader

    data = long_video.read_bytes()
    head = aws.s3.put_object(Bucket=BUCKET, Key="raw/video.bin", Body=data)
    reader = S3RangeReader(aws.s3, BUCKET, "raw/video.bin", len(data), etag=head["ETag"].strip('"'),
                           block_size=64 * 1024, cached_blocks=4)
    rng = random.Random(7)
    for _ in range(60):
        start, length = rng.randrange(len(data)), rng.choice([1, 100, 65_535, 65_536, 70_000, 300_000])
        assert reader.seek(start) == start
        assert reader.read(length) == data[start:start + length]
    assert reader.seek(-10, 2) == len(data) - 10 and reader.read() == data[-10:] and reader.read(5) == b""
    assert reader.bytes_fetched < len(data) * 3 and reader.error is None

    aws.s3.put_object(Bucket=BUCKET, Key="raw/video.bin", Body=b"another file")
    reader.seek(0)
    with pytest.raises(ObjectChanged):
        reader.read(100_000)
    assert isinstance(reader.error, ObjectChanged)
