"""OpenAICompatProvider against a local fake OpenAI-compatible server: real httpx, real HTTP, real SSE.

The fake (tests/fakes/openai_server.py) is scripted per test and records every request it gets, so
tests can count attempts (retries) and inspect exactly what was sent. Backoff and timeouts are
scaled down so the whole file runs in a few seconds.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cgchat.chat.providers.base import ChatMessage, GenerationParams, ProviderError, Stop, TextDelta, Usage
from cgchat.chat.providers.openai_compat import OpenAICompatProvider
from tests.fakes.openai_server import FakeOpenAI, reply

MODEL = "llama3.2:3b"
SYSTEM = "You answer questions about the studio's asset library."
MESSAGES = [
    ChatMessage("user", "Which rigs use the new facial system?"),
    ChatMessage("assistant", "Three: Ada, Bo and Cy."),
    ChatMessage("user", "Only the ones rendered in 2024?"),
]
PARAMS = GenerationParams(max_tokens=321, temperature=0.3, top_p=0.8, stop=["</answer>"])
TEST_TIME_LIMIT_S = 5.0  # a hang guard, not a speed target


@pytest.fixture(autouse=True)
def bounded_time() -> Iterator[None]:
    """No test may hang (pytest-timeout is absent)."""
    start = time.monotonic()
    yield
    assert time.monotonic() - start < TEST_TIME_LIMIT_S


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI().running() as server:
        yield server


def make_provider(base_url: str, **overrides: Any) -> OpenAICompatProvider:
    options: dict[str, Any] = {"retry_base_delay": 0.01, "read_timeout": 2.0, "connect_timeout": 1.0}
    options.update(overrides)
    return OpenAICompatProvider(base_url, MODEL, **options)


def collect(provider: OpenAICompatProvider) -> list[Any]:
    return list(provider.stream(SYSTEM, MESSAGES, PARAMS))


def consume_until_error(provider: OpenAICompatProvider) -> tuple[list[Any], ProviderError]:
    """Events yielded before the ProviderError, and the error itself."""
    events: list[Any] = []
    with pytest.raises(ProviderError) as info:
        events.extend(provider.stream(SYSTEM, MESSAGES, PARAMS))
    return events, info.value


def closed_port() -> int:
    """A port nothing listens on: bind, read the number, close."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- happy path -------------------------------------------------------------------------------


def test_streams_text_usage_and_stop(fake: FakeOpenAI) -> None:
    fake.enqueue(reply("Ada ", "and ", "Bo.", prompt_tokens=42, completion_tokens=3))
    events = collect(make_provider(fake.url))

    assert events == [TextDelta("Ada "), TextDelta("and "), TextDelta("Bo."), Usage(42, 3), Stop("end_turn")]
    [request] = fake.requests
    assert request.path == "/v1/chat/completions"
    assert "authorization" not in request.headers
    assert request.body == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": MESSAGES[0].content},
            {"role": "assistant", "content": MESSAGES[1].content},
            {"role": "user", "content": MESSAGES[2].content},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 321,
        "temperature": 0.3,
        "top_p": 0.8,
        "stop": ["</answer>"],
    }


def test_api_key_is_sent_as_bearer_and_trailing_slash_is_tolerated(fake: FakeOpenAI) -> None:
    fake.enqueue(reply("ok"))
    provider = OpenAICompatProvider(fake.url + "/", MODEL, api_key="sk-secret", retry_base_delay=0.01)

    collect(provider)

    assert fake.requests[0].path == "/v1/chat/completions"
    assert fake.requests[0].headers["authorization"] == "Bearer sk-secret"
    assert provider.name == "openai" and provider.model == MODEL
    assert "sk-secret" not in repr(provider)


def test_length_maps_to_max_tokens_and_usage_is_optional(fake: FakeOpenAI) -> None:
    fake.enqueue(reply("trunc", finish="length", usage=False))
    assert collect(make_provider(fake.url)) == [TextDelta("trunc"), Stop("max_tokens")]


def test_other_finish_reasons_pass_through(fake: FakeOpenAI) -> None:
    fake.enqueue(reply("x", finish="tool_calls"))
    assert collect(make_provider(fake.url))[-1] == Stop("tool_calls")


def test_lines_split_across_network_chunks_and_comments(fake: FakeOpenAI) -> None:
    """SSE lines may arrive in pieces; keep-alive comments and blank lines are ignored."""
    fake.enqueue(
        [
            ("raw", ": keep-alive\n\n"),
            ("raw", 'data: {"choices":[{"index":0,"delta":{"con'),
            ("sleep", 0.05),  # make sure the halves really are separate reads
            ("raw", 'tent":"Hé"},"finish_reason":null}]}\n\n'),
            ("raw", "\n"),
            ("text", "llo"),
            ("finish", "stop"),
            ("done",),
        ]
    )
    assert collect(make_provider(fake.url)) == [TextDelta("Hé"), TextDelta("llo"), Stop("end_turn")]


def test_client_is_reused_across_streams(fake: FakeOpenAI) -> None:
    fake.enqueue(reply("one"), reply("two"))
    provider = make_provider(fake.url)
    client = provider._client
    assert collect(provider)[0] == TextDelta("one")
    assert collect(provider)[0] == TextDelta("two")
    assert provider._client is client and len(fake.requests) == 2


# --- retries before text ----------------------------------------------------------------------


def test_429_then_success_is_retried(fake: FakeOpenAI) -> None:
    fake.enqueue([("http_error", 429, "Rate limit reached")], reply("after the wait"))
    events = collect(make_provider(fake.url))

    assert events[0] == TextDelta("after the wait")
    assert events[-1] == Stop("end_turn")
    assert len(fake.requests) == 2


def test_persistent_500_gives_up_after_max_attempts(fake: FakeOpenAI) -> None:
    fake.enqueue([("http_error", 500, "CUDA out of memory")])
    events, error = consume_until_error(make_provider(fake.url, max_attempts=3))

    assert events == []
    assert error.retryable and not error.after_tokens
    assert "CUDA out of memory" in error.message and "3 attempts" in error.message
    assert len(fake.requests) == 3


def test_in_stream_error_before_text_is_retried(fake: FakeOpenAI) -> None:
    fake.enqueue([("error", "model is loading")], reply("ready"))
    assert collect(make_provider(fake.url))[0] == TextDelta("ready")
    assert len(fake.requests) == 2


def test_drop_before_text_is_retried(fake: FakeOpenAI) -> None:
    fake.enqueue([("drop",)], reply("second try"))
    assert collect(make_provider(fake.url))[0] == TextDelta("second try")
    assert len(fake.requests) == 2


def test_connection_refused_is_retryable() -> None:
    start = time.monotonic()
    events, error = consume_until_error(make_provider(f"http://127.0.0.1:{closed_port()}/v1", max_attempts=2))

    assert events == []
    assert error.retryable and not error.after_tokens
    assert error.code == "ConnectionError"
    assert time.monotonic() - start < 3


# --- non-retryable HTTP errors ----------------------------------------------------------------


def test_404_is_not_retried_and_names_the_model(fake: FakeOpenAI) -> None:
    fake.enqueue([("http_error", 404, f"model '{MODEL}' not found, try pulling it first")])
    events, error = consume_until_error(make_provider(fake.url))

    assert events == [] and not error.retryable
    assert error.code == "NotFound"
    assert MODEL in error.message and fake.url in error.message
    assert "try pulling it first" in error.message
    assert len(fake.requests) == 1


def test_401_with_ollama_style_error_body(fake: FakeOpenAI) -> None:
    fake.enqueue([("http_error", 401, {"error": "invalid api key"})])
    _, error = consume_until_error(make_provider(fake.url, api_key="wrong"))

    assert not error.retryable and error.code == "Unauthorized"
    assert "invalid api key" in error.message and "wrong" not in error.message
    assert len(fake.requests) == 1


def test_400_with_non_json_body(fake: FakeOpenAI) -> None:
    fake.enqueue([("http_error", 400, b"context length exceeded")])
    _, error = consume_until_error(make_provider(fake.url))
    assert not error.retryable and "context length exceeded" in error.message


# --- failures after text ----------------------------------------------------------------------


def test_in_stream_error_after_text_is_not_retried(fake: FakeOpenAI) -> None:
    fake.enqueue([("text", "Ada"), ("error", "backend crashed")], reply("never sent"))
    events, error = consume_until_error(make_provider(fake.url))

    assert events == [TextDelta("Ada")]
    assert error.retryable and error.after_tokens
    assert "backend crashed" in error.message
    assert len(fake.requests) == 1


def test_dropped_connection_mid_stream(fake: FakeOpenAI) -> None:
    fake.enqueue([("text", "Ada "), ("text", "and"), ("drop",)])
    events, error = consume_until_error(make_provider(fake.url))

    assert events == [TextDelta("Ada "), TextDelta("and")]
    assert error.retryable and error.after_tokens
    assert len(fake.requests) == 1


def test_stream_ending_without_done_or_finish_is_an_error(fake: FakeOpenAI) -> None:
    fake.enqueue([("text", "half an ans")])  # clean chunked end, but no finish_reason / [DONE]
    events, error = consume_until_error(make_provider(fake.url))

    assert events == [TextDelta("half an ans")]
    assert error.code == "StreamIncomplete" and error.retryable and error.after_tokens


def test_drop_after_finish_reason_still_completes(fake: FakeOpenAI) -> None:
    """After finish_reason the answer is whole; losing the usage chunk is not worth an error."""
    fake.enqueue([("text", "done"), ("finish", "stop"), ("drop",)])
    assert collect(make_provider(fake.url)) == [TextDelta("done"), Stop("end_turn")]


# --- timeouts ---------------------------------------------------------------------------------


def test_server_that_never_answers_is_bounded_by_read_timeout(fake: FakeOpenAI) -> None:
    fake.enqueue([("sleep", 10)])
    start = time.monotonic()
    events, error = consume_until_error(make_provider(fake.url, read_timeout=0.3))

    assert time.monotonic() - start < 3
    assert events == [] and error.retryable and error.code == "Timeout"
    assert len(fake.requests) == 1  # a timeout is not replayed: that would multiply the wait


def test_stall_mid_stream_is_bounded_by_read_timeout(fake: FakeOpenAI) -> None:
    fake.enqueue([("text", "Ada"), ("sleep", 10)])
    start = time.monotonic()
    events, error = consume_until_error(make_provider(fake.url, read_timeout=0.3))

    assert time.monotonic() - start < 3
    assert events == [TextDelta("Ada")] and error.after_tokens and error.code == "Timeout"
