"""The API against a database that goes away: started while it is down, cut mid-request, and a
password rotated in Secrets Manager. Postgres sits behind a loopback TCP proxy that refuses or
resets connections (tests/fakes/tcp_fault_proxy.py); the server is the real app under uvicorn."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.conftest import LiveServer, _create_database
from tests.fakes.tcp_fault_proxy import TcpFaultProxy


@pytest.fixture()
def proxied(pg_server_url: str) -> Iterator[tuple[TcpFaultProxy, str, str]]:
    """A fresh database, its direct URL, and the same database through the fault proxy (down at first)."""
    direct = _create_database(pg_server_url, f"t_outage_{time.monotonic_ns()}")
    parts = conninfo_to_dict(direct)
    proxy = TcpFaultProxy(f"{parts['host']}/.s.PGSQL.{parts.get('port', 5432)}")
    via_proxy = make_conninfo(direct, host="127.0.0.1", port=str(proxy.port))
    yield proxy, direct, via_proxy
    proxy.down()


@pytest.fixture()
def server_env(session_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cgchat.settings import get_settings

    monkeypatch.setenv("CGCHAT_HOME", str(session_home))
    monkeypatch.setenv("VISUAL_BACKFILL", "false")
    monkeypatch.setenv("UI_ENABLED", "false")
    monkeypatch.setenv("CLIP_MODEL_DIR", str(session_home / "no-clip"))
    get_settings.cache_clear()


def _search(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/search", json={"query": "dragon", "mode": "keyword"})


def _until(predicate, timeout: float = 20.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_server_starts_with_the_database_down_and_recovers_without_restart(
        proxied, server_env, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    proxy, direct, via_proxy = proxied
    monkeypatch.setenv("DATABASE_URL", via_proxy)
    with LiveServer() as live, httpx.Client(base_url=live.base_url, timeout=30) as client:
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        down = _search(client)
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "database_unavailable"
        with psycopg.connect(direct) as conn:  # nothing was created while it was down
            assert conn.execute("SELECT to_regclass('files')").fetchone()[0] is None

        proxy.up()
        _until(lambda: _search(client).status_code == 200)
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and health["database"] is True and health["assets"] == 0
        with psycopg.connect(direct) as conn:  # migrated on the first connection that worked
            assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 4


def test_database_lost_mid_request_is_a_503_then_recovers(
        proxied, server_env, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    proxy, direct, via_proxy = proxied
    proxy.up()
    monkeypatch.setenv("DATABASE_URL", via_proxy)
    with LiveServer() as live, httpx.Client(base_url=live.base_url, timeout=30) as client:
        assert _search(client).status_code == 200
        # Hold a lock so the next search is in flight inside Postgres when the database "dies".
        with psycopg.connect(direct) as blocker:
            blocker.execute("LOCK TABLE files IN ACCESS EXCLUSIVE MODE")
            replies: list[httpx.Response] = []
            worker = threading.Thread(target=lambda: replies.append(_search(client)))
            started = time.monotonic()
            worker.start()
            _until(lambda: _waiting_on_lock(direct) > 0)
            proxy.down(cut=True)
            worker.join(timeout=30)
            assert not worker.is_alive(), "the request hung after the database went away"
            blocker.rollback()
        assert replies[0].status_code == 503, replies[0].text
        assert replies[0].json()["error"]["code"] == "database_unavailable"
        assert time.monotonic() - started < 15
        assert _search(client).status_code == 503  # still down: refused, not hung

        proxy.up()
        _until(lambda: _search(client).status_code == 200)


def _waiting_on_lock(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).fetchone()[0]


def test_rotated_password_is_read_again_without_restart(
        proxied, server_env, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """The secret first names a role that no longer exists (the old password after a rotation): the
    server answers 503s; once the secret holds working credentials, it recovers by itself."""
    import boto3

    from cgchat.db.connection import forget_secret

    proxy, direct, _ = proxied
    proxy.up()
    parts = conninfo_to_dict(direct)
    secrets = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_endpoint)

    def secret(user: str) -> str:
        return json.dumps({"username": user, "password": "", "host": "127.0.0.1", "port": proxy.port,
                           "dbname": parts["dbname"]})

    arn = secrets.create_secret(Name=f"cgchat-db-{parts['dbname']}", SecretString=secret("cgchat_before_rotation"))["ARN"]
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_SECRET_ARN", arn)
    monkeypatch.setenv("DATABASE_SSLMODE", "disable")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    forget_secret()
    from cgchat.settings import get_settings

    get_settings.cache_clear()
    try:
        with LiveServer() as live, httpx.Client(base_url=live.base_url, timeout=30) as client:
            refused = _search(client)
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "database_unavailable"
            assert "password" not in refused.text and "cgchat_before_rotation" not in refused.text

            secrets.put_secret_value(SecretId=arn, SecretString=secret(parts["user"]))
            _until(lambda: _search(client).status_code == 200)
            assert client.get("/healthz").json()["status"] == "ok"
    finally:
        forget_secret()
