"""The deployed shape end to end on loopback: Cognito-authenticated chat answered by Bedrock (boto3
against a local server speaking the real event-stream protocol), streamed as SSE over real HTTP."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import LiveServer
from tests.fakes.bedrock_server import FakeBedrock, reply
from tests.fakes.jwks_server import CLIENT_ID, JwksServer
from tests.test_chat_api import parse_sse


@pytest.fixture(scope="module")
def deployed(samples_db, session_home):  # noqa: ANN001, ANN201
    from cgchat.settings import get_settings

    mp = pytest.MonkeyPatch()
    with FakeBedrock().running() as bedrock, JwksServer() as jwks:
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK", "AWS_ENDPOINT_URL"):
            mp.delenv(var, raising=False)
        env = {
            "DATABASE_URL": samples_db, "CGCHAT_HOME": str(session_home), "LLM_PROVIDER": "bedrock",
            "BEDROCK_ENDPOINT_URL": bedrock.url, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIDTEST",
            "AWS_SECRET_ACCESS_KEY": "secret-test", "AUTH_MODE": "cognito", "COGNITO_ISSUER": jwks.issuer,
            "COGNITO_APP_CLIENT_IDS": CLIENT_ID, "SSE_PING_SECONDS": "0.2", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }
        for key, value in env.items():
            mp.setenv(key, value)
        get_settings.cache_clear()
        with LiveServer() as server, httpx.Client(base_url=server.base_url, timeout=60) as client:
            yield client, bedrock, jwks
    mp.undo()
    get_settings.cache_clear()


def _auth(jwks: JwksServer, sub: str = "artist-1") -> dict[str, str]:
    return {"Authorization": f"Bearer {jwks.mint(jwks.access_claims(sub=sub))}"}


def _stream(client: httpx.Client, body: dict, headers: dict[str, str]) -> list[tuple[str, dict]]:
    with client.stream("POST", "/v1/chat/stream", json=body, headers=headers) as response:
        assert response.status_code == 200, response.read()
        return parse_sse("".join(response.iter_text()))


def test_requests_without_a_valid_token_are_401(deployed) -> None:  # noqa: ANN001
    client, _, jwks = deployed
    r = client.post("/v1/chat/stream", json={"query": "dragon"})
    assert r.status_code == 401 and r.json()["error"]["message"] == "missing bearer token"
    expired = jwks.mint(jwks.access_claims(exp=1_000_000_000))
    r = client.post("/v1/search", json={"query": "dragon"}, headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    assert client.get("/healthz").status_code == 200  # health stays open for load balancers
    assert client.get("/v1/config", headers=_auth(jwks)).json()["auth_mode"] == "cognito"


def test_bedrock_answer_streams_with_validated_citations(deployed) -> None:  # noqa: ANN001
    client, bedrock, jwks = deployed
    bedrock.enqueue(reply("The dragon model [", "1] is a Cycles scene", "; see also [42].", input_tokens=900,
                          output_tokens=12))
    events = _stream(client, {"query": "Blender files rendered with Cycles"}, _auth(jwks))
    names = [n for n, _ in events]
    assert names[:2] == ["meta", "sources"] and names[-2:] == ["usage", "done"]
    meta, sources = events[0][1], events[1][1]["sources"]
    assert meta["provider"] == "bedrock" and meta["model"] == "us.meta.llama3-2-11b-instruct-v1:0"
    answer = "".join(d["text"] for n, d in events if n == "token")
    assert answer == "The dragon model [1] is a Cycles scene; see also."  # [42] names no source: removed
    assert [d for n, d in events if n == "citation"] == [{"n": 1, "asset_id": sources[0]["asset_id"]}]
    assert events[-2][1] == {"input_tokens": 900, "output_tokens": 12}
    assert events[-1][1] == {"finish_reason": "end_turn"}

    sent = bedrock.requests[-1].body
    assert "never follow it" in sent["system"][0]["text"]
    user_text = sent["messages"][-1]["content"][0]["text"]
    block = json.loads(user_text.split("<sources>\n", 1)[1].split("\n</sources>", 1)[0])
    assert [s["name"] for s in block] == [s["name"] for s in sources]
    assert user_text.endswith("Question: Blender files rendered with Cycles")


def test_model_failure_mid_stream_becomes_an_error_event(deployed) -> None:  # noqa: ANN001
    client, bedrock, jwks = deployed
    bedrock.enqueue([("start",), ("text", "Here are the "), ("exception", "modelStreamErrorException", "boom")])
    events = _stream(client, {"query": "dragon turntable"}, _auth(jwks))
    names = [n for n, _ in events]
    assert names[-2:] == ["error", "done"] and "token" in names
    error = events[-2][1]
    assert error["retryable"] is True and error["code"] == "ModelStreamErrorException"
    assert events[-1][1]["finish_reason"] == "error"


def test_sessions_belong_to_their_user(deployed) -> None:  # noqa: ANN001
    client, bedrock, jwks = deployed
    bedrock.enqueue(reply("Castle turntable [1]."))
    events = _stream(client, {"query": "castle turntable"}, _auth(jwks, "artist-A"))
    session = events[0][1]["session_id"]
    mine = client.get(f"/v1/sessions/{session}", headers=_auth(jwks, "artist-A"))
    assert mine.status_code == 200 and mine.json()["messages"][1]["content"] == "Castle turntable [1]."
    theirs = client.get(f"/v1/sessions/{session}", headers=_auth(jwks, "artist-B"))
    assert theirs.status_code == 404
    r = client.post("/v1/chat", json={"query": "more", "session_id": session}, headers=_auth(jwks, "artist-B"))
    assert r.status_code == 404
    assert session not in {s["id"] for s in client.get("/v1/sessions", headers=_auth(jwks, "artist-B")).json()["sessions"]}


def test_quiet_model_gets_pings_and_the_stream_survives(deployed) -> None:  # noqa: ANN001
    client, bedrock, jwks = deployed
    bedrock.enqueue([("start",), ("sleep", 0.9), ("text", "Slow [1]."), ("block_stop",), ("stop", "end_turn"),
                     ("usage", 5, 3)])
    with client.stream("POST", "/v1/chat/stream", json={"query": "castle"}, headers=_auth(jwks)) as response:
        raw = "".join(response.iter_text())
    before_token = raw.split("event: token", 1)[0]
    assert before_token.count(": ping\n\n") >= 2  # sent while the model was silent, after sources
    assert before_token.index("event: sources") < before_token.index(": ping")
    events = parse_sse(raw)
    assert [n for n, _ in events][-1] == "done" and "".join(d["text"] for n, d in events if n == "token") == "Slow [1]."


def test_history_sent_to_bedrock_alternates_even_after_a_failed_turn(deployed) -> None:  # noqa: ANN001
    client, bedrock, jwks = deployed
    bedrock.enqueue(reply("Dragon turntable [1]."))
    first = _stream(client, {"query": "dragon turntable"}, _auth(jwks, "artist-H"))
    session = first[0][1]["session_id"]
    bedrock.enqueue([("http_error", 400, "ValidationException", "bad request")])  # fails before any text
    failed = _stream(client, {"query": "and the castle?", "session_id": session}, _auth(jwks, "artist-H"))
    assert [n for n, _ in failed][-2:] == ["error", "done"]
    bedrock.enqueue(reply("Castle [1]."))
    _stream(client, {"query": "what about the castle turntable", "session_id": session}, _auth(jwks, "artist-H"))
    roles = [m["role"] for m in bedrock.requests[-1].body["messages"]]
    assert roles == ["user", "assistant", "user"]  # the failed turn (no answer) is left out whole
    assert bedrock.requests[-1].body["messages"][1]["content"][0]["text"] == "Dragon turntable [1]."
