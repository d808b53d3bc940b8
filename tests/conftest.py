"""Shared fixtures: one real embedded PostgreSQL per test session, a fresh database per test.

Tests talk to the database through DATABASE_URL, exactly as a deployment with its own Postgres
would; one test (test_embedded_default) covers the no-DATABASE_URL path end to end.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
ARTIFACTS = REPO / "test-artifacts"

# pgserver (via platformdirs) wants a runtime dir; CI machines often have none set.
if "XDG_RUNTIME_DIR" not in os.environ:
    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="cgchat-run-")
    # pgserver's own exit hook writes a lock file here, so remove the folder after it (atexit is LIFO).
    atexit.register(shutil.rmtree, os.environ["XDG_RUNTIME_DIR"], ignore_errors=True)
# All state of the test session (database, built models) lives here, never in ~/.cgchat. Not under
# pytest's private tmp (mode 700): as root, pgserver runs Postgres as its own system user, which
# must be able to reach the data dir.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="cgchat-test-"))
_SESSION_HOME.chmod(0o755)
os.environ["CGCHAT_HOME"] = str(_SESSION_HOME)
os.environ.pop("DATABASE_URL", None)


@pytest.fixture(scope="session")
def session_home() -> Iterator[Path]:
    yield _SESSION_HOME
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server_url(session_home: Path) -> Iterator[str]:
    """The embedded Postgres (pgserver) that every test database lives in."""
    import pgserver

    server = pgserver.get_server(session_home / "pgdata", cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


def _create_database(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_conninfo(server_url, dbname=name)


@pytest.fixture()
def db_url(pg_server_url: str, session_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty database; DATABASE_URL and CGCHAT_HOME point the code (and subprocesses) at it."""
    url = _create_database(pg_server_url, f"t_{uuid.uuid4().hex[:12]}")
    _use_database(monkeypatch, url, session_home)
    return url


def _use_database(monkeypatch: pytest.MonkeyPatch, url: str, home: Path) -> None:
    from cgchat.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("CGCHAT_HOME", str(home))
    get_settings.cache_clear()


@pytest.fixture()
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    from cgchat.db import migrate
    from cgchat.db.connection import open_connection

    migrate(db_url)
    c = open_connection(db_url)
    yield c
    c.close()


@pytest.fixture(scope="session")
def encoder():
    from cgchat.models.text_encoder import get_text_encoder

    return get_text_encoder()


@pytest.fixture(scope="session")
def tiny_clip_dir(session_home: Path) -> Path:
    """A tiny random CLIP exported through install-clip's conversion (tests/tiny_clip.py), outside
    CGCHAT_HOME/models/clip: it is "installed" only for tests that ask for ``clip_env``."""
    from tests.tiny_clip import export_tiny_clip

    return export_tiny_clip(session_home / "tiny-clip")


@pytest.fixture()
def clip_env(tiny_clip_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """CLIP_MODEL_DIR points at the tiny CLIP for this test (and its subprocesses and servers)."""
    from cgchat.settings import get_settings

    monkeypatch.setenv("CLIP_MODEL_DIR", str(tiny_clip_dir))
    get_settings.cache_clear()
    yield tiny_clip_dir
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def samples_db(pg_server_url: str, encoder) -> str:  # noqa: ANN001
    """One database with the whole sample library indexed, shared read-only by search tests."""
    from cgchat.db import migrate
    from cgchat.db.connection import open_connection
    from cgchat.ingest.pipeline import Ingestor

    url = _create_database(pg_server_url, "samples_index")
    migrate(url)
    with open_connection(url) as c:
        report = Ingestor(c, encoder).run([SAMPLES])
    assert report.added > 20 and not report.skipped, report.as_dict()
    return url


@pytest.fixture()
def samples_conn(samples_db: str, session_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[psycopg.Connection]:
    from cgchat.db.connection import open_connection

    _use_database(monkeypatch, samples_db, session_home)
    c = open_connection(samples_db)
    yield c
    c.close()


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    """A private copy of the sample library that a test may change."""
    dest = tmp_path / "library"
    shutil.copytree(SAMPLES, dest)
    return dest


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real ``cgchat`` console entry point in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "cgchat.cli", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto in server mode on loopback (S3, SQS, Secrets Manager...), with fake credentials and no
    profile or endpoint from the developer's own environment leaking in."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    mp = pytest.MonkeyPatch()
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        mp.delenv(var, raising=False)
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_CONFIG_FILE": "/dev/null",
                       "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        mp.setenv(key, value)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        mp.undo()
        server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """The real app under uvicorn on a loopback port, in a background thread."""

    def __init__(self) -> None:
        import uvicorn

        from cgchat.api.app import create_app

        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@contextmanager
def live_server(env: dict[str, str], unset: Iterable[str] = ()) -> Iterator[LiveServer]:
    """The app under uvicorn with these environment variables set (and ``unset`` removed) while it
    runs; for module-scoped servers, where the function-scoped ``monkeypatch`` cannot be used."""
    from cgchat.settings import get_settings

    mp = pytest.MonkeyPatch()
    for key in unset:
        mp.delenv(key, raising=False)
    for key, value in env.items():
        mp.setenv(key, value)
    get_settings.cache_clear()
    try:
        with LiveServer() as server:
            yield server
    finally:
        mp.undo()
        get_settings.cache_clear()
