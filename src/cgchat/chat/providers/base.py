"""The one interface every LLM provider implements: stream(system, messages, params) → events.

Providers are synchronous iterators (boto3 and llama.cpp are synchronous); the HTTP layer runs
them in a worker thread. A provider yields TextDelta events as text arrives, then at most one
Usage, then exactly one Stop; on failure it raises ProviderError, saying whether any text had
already been yielded (the pipeline then emits an ``error`` event instead of retrying).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol


@dataclass(slots=True, frozen=True)
class ChatMessage:
    role: Literal["user", "assistant"]
    content: str


@dataclass(slots=True, frozen=True)
class GenerationParams:
    max_tokens: int = 700
    temperature: float = 0.2
    top_p: float = 0.9
    stop: list[str] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class TextDelta:
    text: str


@dataclass(slots=True, frozen=True)
class Usage:
    input_tokens: int | None
    output_tokens: int | None


@dataclass(slots=True, frozen=True)
class Stop:
    reason: str  # "end_turn" | "max_tokens" | "stop_sequence" | "content_filtered" | ...


ProviderEvent = TextDelta | Usage | Stop


class ProviderError(Exception):
    """The model could not answer. ``retryable``: trying again later may work (throttling, 5xx);
    ``after_tokens``: some text was already yielded, so the request must not be silently retried."""

    def __init__(self, code: str, message: str, *, retryable: bool, after_tokens: bool = False):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.after_tokens = after_tokens


class LLMProvider(Protocol):
    name: str  # "bedrock" | "openai" | "llamacpp" | "none"
    model: str

    def stream(self, system: str, messages: list[ChatMessage], params: GenerationParams) -> Iterator[ProviderEvent]: ...
