"""BedrockProvider against a local fake Bedrock: real boto3, real HTTP, real event-stream frames.

Nothing here talks to AWS; credentials are dummies and the endpoint is 127.0.0.1. The fake server
(tests/fakes/bedrock_server.py) is scripted per test and records every request it receives, so
tests can count attempts (retries) and inspect exactly what was sent.

Timing notes: botocore's own backoff for HTTP 429 is rand(0..1 s) * 2**n, and adaptive mode then
rate-limits the client (>= 0.5 req/s), so tests that provoke HTTP 429 use max_attempts=2 and a
fresh provider each; in-stream errors use our own backoff, scaled down via retry_base_delay.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from cgchat.chat.providers.base import ChatMessage, GenerationParams, ProviderError, Stop, TextDelta, Usage
from cgchat.chat.providers.bedrock import BedrockProvider
from tests.fakes.bedrock_server import FakeBedrock, reply

MODEL = "us.meta.llama3-2-11b-instruct-v1:0"
SYSTEM = "You answer questions about the studio's asset library."
MESSAGES = [
    ChatMessage("user", "Which rigs use the new facial system?"),
    ChatMessage("assistant", "Three: Ada, Bo and Cy."),
    ChatMessage("user", "Only the ones rendered in 2024?"),
]
PARAMS = GenerationParams(max_tokens=321, temperature=0.3, top_p=0.8, stop=["</answer>"])
TEST_TIME_LIMIT_S = 10.0  # generous: a hang guard, not a speed target


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Dummy credentials through the normal boto3 chain; no profile, config file or bearer token
    from the developer's machine may leak in (or send anything to real AWS)."""
    for var in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
        "AWS_RETRY_MODE",
        "AWS_MAX_ATTEMPTS",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTTESTTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(autouse=True)
def bounded_time() -> Iterator[None]:
    """No test may hang: every one must finish well inside its limit (pytest-timeout is absent)."""
    start = time.monotonic()
    yield
    assert time.monotonic() - start < TEST_TIME_LIMIT_S


@pytest.fixture
def fake() -> Iterator[FakeBedrock]:
    with FakeBedrock().running() as server:
        yield server


def make_provider(fake: FakeBedrock, **overrides: Any) -> BedrockProvider:
    options: dict[str, Any] = {"retry_base_delay": 0.01, "read_timeout": 2.0, "connect_timeout": 1.0}
    options.update(overrides)
    return BedrockProvider(model_id=MODEL, region="us-east-1", endpoint_url=fake.url, **options)


def collect(provider: BedrockProvider) -> list[Any]:
    return list(provider.stream(SYSTEM, MESSAGES, PARAMS))


def consume_until_error(provider: BedrockProvider) -> tuple[list[Any], ProviderError]:
    """Events yielded before the ProviderError, and the error itself."""
    events: list[Any] = []
    with pytest.raises(ProviderError) as caught:
        events.extend(provider.stream(SYSTEM, MESSAGES, PARAMS))
    return events, caught.value


def text_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# --- the happy path ---------------------------------------------------------------------------


def test_stream_yields_deltas_then_usage_then_stop(fake: FakeBedrock) -> None:
    fake.enqueue(reply("Ada ", "and ", "Cy.", input_tokens=123, output_tokens=7, stop="end_turn"))
    provider = make_provider(fake)

    events = collect(provider)

    assert events[:3] == [TextDelta("Ada "), TextDelta("and "), TextDelta("Cy.")]
    assert events[3:] == [Usage(input_tokens=123, output_tokens=7), Stop("end_turn")]
    assert provider.name == "bedrock" and provider.model == MODEL


def test_request_carries_system_messages_and_inference_config(fake: FakeBedrock) -> None:
    fake.enqueue(reply("ok"))
    collect(make_provider(fake))

    [request] = fake.requests
    assert request.method == "POST" and request.model_id == MODEL
    assert request.path.endswith("/converse-stream")
    assert request.body["system"] == [{"text": SYSTEM}]
    assert request.body["messages"] == [{"role": m.role, "content": [{"text": m.content}]} for m in MESSAGES]
    assert request.body["inferenceConfig"] == {
        "maxTokens": 321,
        "temperature": 0.3,
        "topP": 0.8,
        "stopSequences": ["</answer>"],
    }
    # Signed with SigV4 for the "bedrock" signing name in the configured region.
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDTESTTESTTEST/")
    assert "/us-east-1/bedrock/aws4_request" in request.headers["authorization"]


def test_client_is_created_once_and_reused(fake: FakeBedrock) -> None:
    fake.enqueue(reply("one"), reply("two"))
    provider = make_provider(fake)
    collect(provider)
    client = provider.client
    assert text_of(collect(provider)) == "two"
    assert provider.client is client


def test_other_stop_reasons_pass_through(fake: FakeBedrock) -> None:
    fake.enqueue(reply("trunc", stop="max_tokens"))
    assert collect(make_provider(fake))[-1] == Stop("max_tokens")


# --- retries before any text ------------------------------------------------------------------


def test_http_429_is_retried_by_botocore_then_text_arrives(fake: FakeBedrock) -> None:
    fake.enqueue([("http_error", 429, "ThrottlingException", "Too many requests")], reply("after ", "429"))

    events = collect(make_provider(fake, max_attempts=2))

    assert text_of(events) == "after 429"
    assert len(fake.requests) == 2


def test_in_stream_throttling_before_text_is_retried(fake: FakeBedrock) -> None:
    throttled = [("start",), ("exception", "throttlingException", "slow down")]
    fake.enqueue(throttled, throttled, reply("third ", "time"))

    events = collect(make_provider(fake, max_attempts=4))

    assert text_of(events) == "third time"
    assert events[-1] == Stop("end_turn")
    assert len(fake.requests) == 3
    assert all(r.body == fake.requests[0].body for r in fake.requests)  # the same request replayed


@pytest.mark.parametrize(
    "event_code", ["modelStreamErrorException", "serviceUnavailableException", "internalServerException"]
)
def test_other_retryable_stream_errors_before_text_are_retried(fake: FakeBedrock, event_code: str) -> None:
    fake.enqueue([("start",), ("exception", event_code, "hiccup")], reply("fine"))
    assert text_of(collect(make_provider(fake))) == "fine"
    assert len(fake.requests) == 2


def test_persistent_in_stream_throttling_gives_up_after_max_attempts(fake: FakeBedrock) -> None:
    fake.enqueue([("start",), ("exception", "throttlingException", "slow down")])  # repeats forever

    start = time.monotonic()
    events, error = consume_until_error(make_provider(fake, max_attempts=4, retry_base_delay=0.05))
    elapsed = time.monotonic() - start

    assert events == []
    assert (error.code, error.retryable, error.after_tokens) == ("ThrottlingException", True, False)
    assert "4 attempts" in error.message and "slow down" in error.message
    assert len(fake.requests) == 4
    # Three backoffs of 0.05, 0.1, 0.2 s, each jittered to 50-100 %: real waits, but short ones.
    assert 0.17 <= elapsed < 3.0


def test_persistent_http_429_gives_up_after_max_attempts(fake: FakeBedrock) -> None:
    fake.enqueue([("http_error", 429, "ThrottlingException", "Rate exceeded")])

    events, error = consume_until_error(make_provider(fake, max_attempts=2))

    assert events == []
    assert (error.code, error.retryable, error.after_tokens) == ("ThrottlingException", True, False)
    assert "Rate exceeded" in error.message
    assert len(fake.requests) == 2  # botocore's attempts only: we do not retry on top of them


# --- errors that must not be retried ----------------------------------------------------------


def test_stream_error_after_text_is_raised_not_retried(fake: FakeBedrock) -> None:
    fake.enqueue(
        [("start",), ("text", "Ada uses "), ("exception", "modelStreamErrorException", "model crashed")],
        reply("never sent"),
    )

    events, error = consume_until_error(make_provider(fake))

    assert events == [TextDelta("Ada uses ")]
    assert (error.code, error.retryable, error.after_tokens) == ("ModelStreamErrorException", True, True)
    assert "model crashed" in error.message
    assert len(fake.requests) == 1


def test_validation_error_fails_at_once(fake: FakeBedrock) -> None:
    fake.enqueue([("http_error", 400, "ValidationException", "maxTokens exceeds model limit")])

    events, error = consume_until_error(make_provider(fake))

    assert events == []
    assert (error.code, error.retryable, error.after_tokens) == ("ValidationException", False, False)
    assert "maxTokens exceeds model limit" in error.message and MODEL in error.message
    assert len(fake.requests) == 1


def test_access_denied_explains_model_access(fake: FakeBedrock) -> None:
    fake.enqueue([("http_error", 403, "AccessDeniedException", "You don't have access to the model")])

    _, error = consume_until_error(make_provider(fake))

    assert (error.code, error.retryable) == ("AccessDeniedException", False)
    assert f"model access not granted for {MODEL}" in error.message
    assert len(fake.requests) == 1


def test_in_stream_validation_error_is_not_retried(fake: FakeBedrock) -> None:
    fake.enqueue([("start",), ("exception", "validationException", "bad input")], reply("never sent"))

    _, error = consume_until_error(make_provider(fake))

    assert (error.code, error.retryable, error.after_tokens) == ("ValidationException", False, False)
    assert len(fake.requests) == 1


# --- broken streams ---------------------------------------------------------------------------


def test_dropped_connection_mid_stream(fake: FakeBedrock) -> None:
    fake.enqueue([("start",), ("text", "Ada "), ("drop",)], reply("never sent"))

    events, error = consume_until_error(make_provider(fake))

    assert events == [TextDelta("Ada ")]
    assert (error.retryable, error.after_tokens) == (True, True)
    assert len(fake.requests) == 1


def test_dropped_connection_before_text(fake: FakeBedrock) -> None:
    fake.enqueue([("start",), ("drop",)])

    events, error = consume_until_error(make_provider(fake))

    assert events == []
    assert (error.retryable, error.after_tokens) == (True, False)


def test_stream_that_ends_without_message_stop(fake: FakeBedrock) -> None:
    fake.enqueue([("start",), ("text", "half an ans")])  # well-formed HTTP, but no messageStop

    events, error = consume_until_error(make_provider(fake))

    assert events == [TextDelta("half an ans")]
    assert (error.code, error.retryable, error.after_tokens) == ("StreamIncomplete", True, True)


def test_corrupt_frame_is_an_error_not_garbage_text(fake: FakeBedrock) -> None:
    fake.enqueue([("start",), ("text", "ok "), ("bad_crc", "garbage")])

    events, error = consume_until_error(make_provider(fake))

    assert events == [TextDelta("ok ")]
    assert error.after_tokens and "Checksum mismatch" in error.message


def test_stalled_stream_times_out_instead_of_hanging(fake: FakeBedrock) -> None:
    fake.enqueue([("start",), ("text", "Ada "), ("sleep", 3.0), ("text", "too late")])

    start = time.monotonic()
    events, error = consume_until_error(make_provider(fake, read_timeout=0.3))
    elapsed = time.monotonic() - start

    assert events == [TextDelta("Ada ")]
    assert (error.retryable, error.after_tokens) == (True, True)
    assert "timed out" in error.message
    assert elapsed < 3.0  # far below the 120 s default read timeout: no hang


def test_unresponsive_server_times_out_after_botocore_retries(fake: FakeBedrock) -> None:
    fake.enqueue([("sleep", 3.0)])  # never even sends response headers

    start = time.monotonic()
    _, error = consume_until_error(make_provider(fake, read_timeout=0.3, max_attempts=2))
    elapsed = time.monotonic() - start

    assert (error.code, error.retryable, error.after_tokens) == ("ConnectionError", True, False)
    assert len(fake.requests) == 2  # botocore retried the read timeout once
    assert elapsed < 3.0  # far below the 120 s default read timeout: no hang


def test_abandoned_stream_leaves_provider_usable(fake: FakeBedrock) -> None:
    """A client that disconnects mid-answer closes our generator; the next request must work."""
    fake.enqueue([("start",), ("text", "first "), ("sleep", 0.2), ("text", "unread")], reply("next"))
    provider = make_provider(fake)

    stream = provider.stream(SYSTEM, MESSAGES, PARAMS)
    assert next(stream) == TextDelta("first ")
    stream.close()

    assert text_of(collect(provider)) == "next"


def test_drop_after_message_stop_still_completes(fake: FakeBedrock) -> None:
    """messageStop means the answer is whole; losing only the trailing metadata is not an error."""
    fake.enqueue([("start",), ("text", "done"), ("stop", "end_turn"), ("drop",)])

    assert collect(make_provider(fake)) == [TextDelta("done"), Stop("end_turn")]
