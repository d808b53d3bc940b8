"""One contract, two session stores: Postgres (local default) and DynamoDB (moto in server mode on
loopback, reached over real HTTP by boto3)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from cgchat.chat.sessions import PostgresSessions, SessionNotFound, StoredMessage
from tests.conftest import free_port


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


@pytest.fixture(params=["postgres", "dynamodb"])
def store(request, conn, moto_endpoint, aws_env):  # noqa: ANN001, ANN201
    if request.param == "postgres":
        return PostgresSessions(conn)
    import boto3

    from cgchat.chat.sessions_dynamo import DynamoSessions, table_definition

    table = f"sessions-{uuid.uuid4().hex[:8]}"
    boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_endpoint).create_table(**table_definition(table))
    return DynamoSessions(table, "us-east-1", moto_endpoint)


def _msg(role: str, content: str, **extra: object) -> StoredMessage:
    return StoredMessage(id=str(uuid.uuid4()), role=role, content=content, **extra)  # type: ignore[arg-type]


def test_messages_persist_in_order_with_sources(store) -> None:  # noqa: ANN001
    sid = store.open("alice", None, "dragon turntables")
    assert store.history("alice", sid) == []
    sources = [{"n": 1, "asset_id": 7, "name": "dragon_turntable_v003.mp4", "score": 0.0328}]
    store.append(sid, _msg("user", "the dragon turntables", standalone_query="the dragon turntables"),
                 _msg("assistant", "Here [1].", sources=sources, citations=[{"n": 1, "asset_id": 7}],
                      provider="none", model="grounded-summary", finish_reason="end_turn"))
    store.append(sid, _msg("user", "only castle", standalone_query="the dragon turntables, only castle"),
                 _msg("assistant", "None."))
    history = store.history("alice", sid)
    assert [(m.role, m.content) for m in history] == [
        ("user", "the dragon turntables"), ("assistant", "Here [1]."), ("user", "only castle"), ("assistant", "None.")]
    assert history[1].sources == sources and history[1].citations == [{"n": 1, "asset_id": 7}]
    assert history[2].standalone_query == "the dragon turntables, only castle"
    assert store.open("alice", sid, "ignored") == sid


def test_users_only_see_their_own_sessions(store) -> None:  # noqa: ANN001
    a1 = store.open("alice", None, "first")
    a2 = store.open("alice", None, "second")
    store.append(a1, _msg("user", "newer activity"))
    b1 = store.open("bob", None, "bob's")
    assert [s["id"] for s in store.list("alice")] == [a1, a2]  # most recently updated first
    assert [s["id"] for s in store.list("bob")] == [b1]
    for call in (lambda: store.history("bob", a1), lambda: store.open("bob", a1, "x"), lambda: store.delete("bob", a1)):
        with pytest.raises(SessionNotFound):
            call()
    assert store.history("alice", a1)  # bob's attempts changed nothing


def test_delete_and_bad_ids(store) -> None:  # noqa: ANN001
    sid = store.open("alice", None, "to delete")
    store.append(sid, _msg("user", "hello"))
    store.delete("alice", sid)
    for bad in (sid, "not-a-uuid", "'; DROP TABLE chat_sessions; --", str(uuid.uuid4())):
        with pytest.raises(SessionNotFound):
            store.history("alice", bad)
