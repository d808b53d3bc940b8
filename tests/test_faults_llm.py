"""Model endpoint faults, end to end: the real API server on loopback, POST /v1/chat/stream (SSE) and
POST /v1/chat (JSON), answered by Bedrock (real boto3 against tests/fakes/bedrock_server.py, which speaks
the AWS event-stream protocol) or by an OpenAI-compatible server (real httpx against
tests/fakes/openai_server.py). Only the far end of the socket misbehaves; the server must

* retry throttling / 5xx / drops that happen before the first token, with bounded backoff, and answer;
* end a stream that drops, is reset, or stalls after text with an ``error`` event then ``done``, within
  LLM_READ_TIMEOUT_S plus slack, never a hung stream;
* keep serving: the next request (and a concurrent one) is answered normally.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import live_server
from tests.fakes import bedrock_server, openai_server
from tests.fakes.bedrock_server import FakeBedrock
from tests.fakes.openai_server import FakeOpenAI
from tests.test_chat_api import parse_sse

READ_TIMEOUT_S = 1.0  # LLM_READ_TIMEOUT_S for both servers: a stall must end the answer after about this
MAX_ATTEMPTS = 3  # LLM_MAX_ATTEMPTS
STALL_S = 60.0  # how long the fakes go silent: far beyond the read timeout (interrupted at teardown)
SLACK_S = 4.0  # scheduling, retrieval and SSE overhead on a busy 2-core machine
BedrockApi = tuple[httpx.Client, FakeBedrock]
OpenAIApi = tuple[httpx.Client, FakeOpenAI]


def _serve(env: dict[str, str], samples_db: str, session_home: Any) -> Iterator[httpx.Client]:
    unset = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK", "AWS_ENDPOINT_URL",
             "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS", "BEDROCK_MODEL_ID",
             "LLM_BASE_URL", "BEDROCK_ENDPOINT_URL")
    base = {"DATABASE_URL": samples_db, "CGCHAT_HOME": str(session_home), "AUTH_MODE": "off",
            "VISUAL_BACKFILL": "false", "SSE_PING_SECONDS": "0.3", "LLM_READ_TIMEOUT_S": str(READ_TIMEOUT_S),
            "LLM_MAX_ATTEMPTS": str(MAX_ATTEMPTS)}
    with live_server({**base, **env}, unset) as server, httpx.Client(base_url=server.base_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def bedrock_api(samples_db: str, session_home: Any) -> Iterator[BedrockApi]:
    with FakeBedrock().running() as fake:
        env = {"LLM_PROVIDER": "bedrock", "BEDROCK_ENDPOINT_URL": fake.url, "AWS_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret-test", "AWS_CONFIG_FILE": "/dev/null",
               "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true"}
        for client in _serve(env, samples_db, session_home):
            yield client, fake


@pytest.fixture(scope="module")
def openai_api(samples_db: str, session_home: Any) -> Iterator[OpenAIApi]:
    with FakeOpenAI().running() as fake:
        for client in _serve({"LLM_PROVIDER": "openai", "LLM_BASE_URL": fake.url}, samples_db, session_home):
            yield client, fake


def ask(client: httpx.Client, query: str) -> tuple[list[tuple[str, dict]], float]:
    """One SSE chat turn: its events and how long the whole stream took."""
    started = time.monotonic()
    with client.stream("POST", "/v1/chat/stream", json={"query": query}) as response:
        assert response.status_code == 200, response.read()
        raw = "".join(response.iter_text())
    return parse_sse(raw), time.monotonic() - started


def answer_of(events: list[tuple[str, dict]]) -> str:
    return "".join(d["text"] for n, d in events if n == "token")


def assert_answered(events: list[tuple[str, dict]], text: str) -> None:
    names = [n for n, _ in events]
    assert "error" not in names, events
    assert names[:2] == ["meta", "sources"] and names[-1] == "done"
    assert events[-1][1]["finish_reason"] == "end_turn"
    assert answer_of(events) == text


def error_of(events: list[tuple[str, dict]]) -> dict:
    """The stream ends with exactly one error event, then done(finish_reason=error)."""
    names = [n for n, _ in events]
    assert names[:2] == ["meta", "sources"], names
    assert names[-2:] == ["error", "done"] and names.count("error") == 1, events
    assert events[-1][1] == {"finish_reason": "error"}
    return events[-2][1]


# --- Bedrock --------------------------------------------------------------------------------------------


def test_bedrock_throttled_before_first_token_is_retried_then_answers(bedrock_api: BedrockApi) -> None:
    client, fake = bedrock_api
    sent = len(fake.requests)
    fake.enqueue([("http_error", 429, "ThrottlingException", "Too many requests")],
                 [("http_error", 429, "ThrottlingException", "Too many requests")],
                 bedrock_server.reply("The dragon [1] is a Cycles scene."))
    events, _ = ask(client, "dragon turntable")
    assert_answered(events, "The dragon [1] is a Cycles scene.")
    assert len(fake.requests) - sent == 3  # two throttled requests, then the answer


def test_bedrock_throttled_until_the_end_gives_a_retryable_error_event(bedrock_api: BedrockApi) -> None:
    client, fake = bedrock_api
    sent = len(fake.requests)
    fake.enqueue([("http_error", 429, "ThrottlingException", "Rate exceeded")])  # repeats: throttled forever
    events, elapsed = ask(client, "castle")
    error = error_of(events)
    assert error["code"] == "ThrottlingException" and error["retryable"] is True
    assert "throttling" in error["message"] and "Rate exceeded" in error["message"]
    assert len(fake.requests) - sent == MAX_ATTEMPTS  # bounded: LLM_MAX_ATTEMPTS requests, no more
    assert elapsed < 20  # botocore's backoff is at most 1 s + 2 s here, plus its adaptive rate limiter
    fake.enqueue(bedrock_server.reply("Back [1]."))
    assert_answered(ask(client, "castle")[0], "Back [1].")


def test_bedrock_in_stream_throttling_before_text_is_retried(bedrock_api: BedrockApi) -> None:
    client, fake = bedrock_api
    sent = len(fake.requests)
    fake.enqueue([("start",), ("exception", "throttlingException", "slow down")],
                 [("start",), ("exception", "modelStreamErrorException", "model hiccup")],
                 bedrock_server.reply("Third time [1]."))
    events, _ = ask(client, "dragon")
    assert_answered(events, "Third time [1].")
    assert len(fake.requests) - sent == 3


@pytest.mark.parametrize("fault", [
    pytest.param([("exception", "throttlingException", "slow down")], id="throttling-event"),
    pytest.param([("exception", "modelStreamErrorException", "model crashed")], id="model-error-event"),
    pytest.param([("drop",)], id="connection-closed"),
    pytest.param([("reset",)], id="connection-reset"),
    pytest.param([("partial", "and the cas"), ("drop",)], id="cut-frame"),
    pytest.param([("sleep", STALL_S)], id="stall"),
])
def test_bedrock_fault_after_text_ends_the_stream_with_an_error_event(bedrock_api: BedrockApi, fault: list[tuple]) -> None:
    client, fake = bedrock_api
    sent = len(fake.requests)
    fake.enqueue([("start",), ("text", "The dragon [1] "), *fault], bedrock_server.reply("Next answer [1]."))
    events, elapsed = ask(client, "dragon turntable")
    error = error_of(events)
    assert answer_of(events) == "The dragon [1] "  # what was shown stays; nothing is replayed after text
    assert error["retryable"] is True and error["message"]
    assert len(fake.requests) - sent == 1
    assert elapsed < READ_TIMEOUT_S + SLACK_S
    # the server keeps serving: the next turn is answered normally
    assert_answered(ask(client, "dragon turntable")[0], "Next answer [1].")


def test_bedrock_stall_mid_stream_is_reported_as_a_timeout(bedrock_api: BedrockApi) -> None:
    client, fake = bedrock_api
    fake.enqueue([("start",), ("text", "Slow "), ("sleep", STALL_S)])
    events, elapsed = ask(client, "castle")
    error = error_of(events)
    assert error["code"] == "StreamInterrupted" and "timed out" in error["message"].lower()
    assert READ_TIMEOUT_S * 0.9 <= elapsed < READ_TIMEOUT_S + SLACK_S


def test_bedrock_that_never_answers_is_given_up_on_in_bounded_time(bedrock_api: BedrockApi) -> None:
    client, fake = bedrock_api
    sent = len(fake.requests)
    fake.enqueue([("sleep", STALL_S)])  # not even response headers
    events, elapsed = ask(client, "dragon")
    error = error_of(events)
    assert error["retryable"] is True and "timeout" in error["message"].lower()
    assert answer_of(events) == ""
    assert len(fake.requests) - sent == MAX_ATTEMPTS  # botocore retried the read timeouts, then gave up
    assert elapsed < MAX_ATTEMPTS * READ_TIMEOUT_S + 3.0 + SLACK_S  # + botocore's backoff (<= 1 s + 2 s)
    fake.enqueue(bedrock_server.reply("Awake [1]."))
    assert_answered(ask(client, "dragon")[0], "Awake [1].")


def test_bedrock_stalled_stream_does_not_block_other_requests(bedrock_api: BedrockApi) -> None:
    client, fake = bedrock_api
    fake.route("slowpoke", [("sleep", STALL_S)])  # this question's requests (and retries) hang
    finished: dict[str, float] = {}
    stalled: list[Any] = []

    def stalled_turn() -> None:
        stalled.append(ask(client, "slowpoke dragon")[0])
        finished["stalled"] = time.monotonic()

    thread = threading.Thread(target=stalled_turn)
    thread.start()
    deadline = time.monotonic() + 10
    while not any("slowpoke" in str(r.body) for r in fake.requests) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.get("/healthz").json()["status"] == "ok"
    fake.enqueue(bedrock_server.reply("Meanwhile [1]."))
    assert_answered(ask(client, "castle turntable")[0], "Meanwhile [1].")
    finished["other"] = time.monotonic()
    thread.join(timeout=MAX_ATTEMPTS * READ_TIMEOUT_S + 3.0 + SLACK_S)
    assert not thread.is_alive()
    assert finished["other"] < finished["stalled"]  # answered while the other stream was still stalled
    assert error_of(stalled[0])["retryable"] is True


def test_bedrock_drop_through_the_json_endpoint(bedrock_api: BedrockApi) -> None:
    client, fake = bedrock_api
    fake.enqueue([("start",), ("text", "Partial "), ("drop",)])
    reply = client.post("/v1/chat", json={"query": "dragon"})
    assert reply.status_code == 200
    body = reply.json()
    assert body["answer"] == "Partial " and body["finish_reason"] == "error"
    assert body["error"]["code"] == "StreamInterrupted" and body["error"]["retryable"] is True


# --- OpenAI-compatible ------------------------------------------------------------------------------------


def test_openai_429_then_503_then_answers(openai_api: OpenAIApi) -> None:
    client, fake = openai_api
    sent = len(fake.requests)
    fake.enqueue([("http_error", 429, "Rate limit reached")], [("http_error", 503, "model is loading")],
                 openai_server.reply("The castle [1]."))
    events, _ = ask(client, "castle turntable")
    assert_answered(events, "The castle [1].")
    assert len(fake.requests) - sent == 3


def test_openai_unavailable_until_the_end_gives_a_retryable_error_event(openai_api: OpenAIApi) -> None:
    client, fake = openai_api
    sent = len(fake.requests)
    fake.enqueue([("http_error", 503, "model is loading")])
    events, elapsed = ask(client, "castle")
    error = error_of(events)
    assert error["code"] == "HTTP503" and error["retryable"] is True and "model is loading" in error["message"]
    assert len(fake.requests) - sent == MAX_ATTEMPTS
    assert elapsed < 10  # our backoff: 0.5 s base, jittered
    fake.enqueue(openai_server.reply("Back [1]."))
    assert_answered(ask(client, "castle")[0], "Back [1].")


def test_openai_drop_before_text_is_retried(openai_api: OpenAIApi) -> None:
    client, fake = openai_api
    fake.enqueue([("drop",)], [("reset",)], openai_server.reply("Third try [1]."))
    assert_answered(ask(client, "dragon")[0], "Third try [1].")


@pytest.mark.parametrize("fault", [
    pytest.param([("error", "CUDA out of memory")], id="error-chunk"),
    pytest.param([("drop",)], id="connection-closed"),
    pytest.param([("reset",)], id="connection-reset"),
    pytest.param([("raw", 'data: {"id":"chatcmpl-fake","choices":[{"delta":{"content":"cas'), ("drop",)],
                 id="cut-line"),
    pytest.param([("sleep", STALL_S)], id="stall"),
])
def test_openai_fault_after_text_ends_the_stream_with_an_error_event(openai_api: OpenAIApi, fault: list[tuple]) -> None:
    client, fake = openai_api
    sent = len(fake.requests)
    fake.enqueue([("text", "The castle [1] "), *fault], openai_server.reply("Next answer [1]."))
    events, elapsed = ask(client, "castle turntable")
    error = error_of(events)
    assert answer_of(events) == "The castle [1] "
    assert error["retryable"] is True and error["message"]
    assert len(fake.requests) - sent == 1
    assert elapsed < READ_TIMEOUT_S + SLACK_S
    assert_answered(ask(client, "castle turntable")[0], "Next answer [1].")


def test_openai_stall_mid_stream_is_reported_as_a_timeout(openai_api: OpenAIApi) -> None:
    client, fake = openai_api
    fake.enqueue([("text", "Slow "), ("sleep", STALL_S)])
    events, elapsed = ask(client, "castle")
    error = error_of(events)
    assert error["code"] == "Timeout" and f"sent nothing for {READ_TIMEOUT_S}s" in error["message"]
    assert READ_TIMEOUT_S * 0.9 <= elapsed < READ_TIMEOUT_S + SLACK_S


def test_openai_server_that_never_answers_is_given_up_on_after_one_read_timeout(openai_api: OpenAIApi) -> None:
    client, fake = openai_api
    sent = len(fake.requests)
    fake.enqueue([("sleep", STALL_S)])
    events, elapsed = ask(client, "dragon")
    error = error_of(events)
    assert error["code"] == "Timeout" and answer_of(events) == ""
    assert len(fake.requests) - sent == 1  # a timeout is not replayed: that would multiply the wait
    assert elapsed < READ_TIMEOUT_S + SLACK_S
    fake.enqueue(openai_server.reply("Awake [1]."))
    assert_answered(ask(client, "dragon")[0], "Awake [1].")


def test_openai_slow_stream_does_not_block_other_requests(openai_api: OpenAIApi) -> None:
    client, fake = openai_api
    trickle = [step for n in range(10) for step in (("text", f"{n} "), ("sleep", READ_TIMEOUT_S / 2))]
    fake.route("slowpoke", [*trickle, ("finish", "stop"), ("done",)])  # alive, never silent past the timeout
    finished: dict[str, float] = {}
    slow: list[Any] = []

    def slow_turn() -> None:
        slow.append(ask(client, "slowpoke castle")[0])
        finished["slow"] = time.monotonic()

    thread = threading.Thread(target=slow_turn)
    thread.start()
    deadline = time.monotonic() + 10
    while not any("slowpoke" in str(r.body) for r in fake.requests) and time.monotonic() < deadline:
        time.sleep(0.02)
    fake.enqueue(openai_server.reply("Meanwhile [1]."))
    assert_answered(ask(client, "dragon turntable")[0], "Meanwhile [1].")
    finished["other"] = time.monotonic()
    thread.join(timeout=10 * READ_TIMEOUT_S + SLACK_S)
    assert not thread.is_alive()
    assert finished["other"] < finished["slow"]  # answered while the slow stream was still going
    assert_answered(slow[0], "".join(f"{n} " for n in range(10)))  # a slow model is not a stalled one
