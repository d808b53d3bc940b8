"""A local GGUF model run in-process by llama.cpp (``llama-cpp-python``) behind LLMProvider.

* The model is loaded lazily, once, on the first ``stream()`` (loading takes seconds and a lot of
  memory, so merely building the provider - e.g. at app start - must stay cheap), then reused.
  A failed load is not remembered: the next request tries again (the file may have appeared).
* A ``Llama`` object is not thread-safe, and the HTTP layer runs providers in worker threads, so
  one lock serialises generation: a second request waits until the first stream is finished (or
  closed by its consumer) before it starts.
* Prompt format: if the caller names a ``chat_format`` (a llama-cpp-python format such as
  "chatml" or "gemma") or the GGUF carries a chat template, we use ``create_chat_completion``.
  Otherwise (base models, like Gemma 3 270M) we build a plain "System:/User:/Assistant:" prompt
  and use ``create_completion``; llama-cpp-python's own silent fallback ("llama-2" [INST] tags)
  only confuses models that were never trained on it.
* Context window policy: the system prompt and the last message (the question plus the retrieved
  sources) are always kept; if the prompt and ``max_tokens`` do not fit in ``n_ctx`` we drop the
  oldest history turns first. If the system prompt and the last message alone leave no room for an
  answer, we raise ``ProviderError("ContextTooLong", retryable=False)``. If they fit but leave less
  than ``max_tokens``, the answer is capped to the room left (and ends with ``max_tokens``).
* Usage: prompt tokens are counted by tokenizing the prompt (exact for the plain format and GGUF
  templates; an upper-bound estimate for named ``chat_format`` s), completion tokens by
  tokenizing the generated text (exactly ``max_tokens`` when the length limit was hit).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cgchat.chat.providers.base import (
    ChatMessage,
    GenerationParams,
    ProviderError,
    ProviderEvent,
    Stop,
    TextDelta,
    Usage,
)

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger(__name__)

_FINISH_REASONS = {"stop": "end_turn", "length": "max_tokens"}
# Room we insist on for the answer when max_tokens cannot be fully honoured.
_MIN_ANSWER_TOKENS = 16
# Template overhead per message (role tags, separators) when we can only estimate a chat format.
_PER_MESSAGE_OVERHEAD = 8
# Plain-format role labels; also the stop sequences that keep a base model from writing both sides.
_PLAIN_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}
_PLAIN_STOPS = ["\nUser:", "\nSystem:"]


class LlamaCppProvider:
    """Streams answers from a local GGUF model through llama-cpp-python (see module docstring)."""

    name = "llamacpp"

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        chat_format: str | None = None,
        model_name: str | None = None,
    ):
        if n_ctx < 2 * _MIN_ANSWER_TOKENS:
            raise ValueError(f"n_ctx must be >= {2 * _MIN_ANSWER_TOKENS}")
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.chat_format = chat_format
        self.model = model_name or self.model_path.stem
        self._llama: Llama | None = None
        self._use_chat = False  # decided once the model (and its metadata) is loaded
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LlamaCppProvider(model_path={str(self.model_path)!r}, n_ctx={self.n_ctx})"

    @property
    def llama(self) -> Llama | None:
        """The loaded ``llama_cpp.Llama`` (None until the first stream)."""
        return self._llama

    # --- loading ----------------------------------------------------------------------------

    def _load(self) -> Llama:
        """Load the model once (double-checked under a lock); errors become ProviderError."""
        if self._llama is not None:
            return self._llama
        with self._load_lock:
            if self._llama is not None:
                return self._llama
            path = self.model_path
            if not path.is_file():
                raise ProviderError(
                    "ModelLoadFailed", f"GGUF model file not found: {path}", retryable=False
                )
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise ProviderError(
                    "ModelLoadFailed",
                    f"cannot load {path}: llama-cpp-python is not installed (pip install 'cgchat[llamacpp]')",
                    retryable=False,
                ) from exc
            try:
                llama = Llama(
                    model_path=str(path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    chat_format=self.chat_format,
                    verbose=False,
                )
            except Exception as exc:  # llama-cpp-python raises ValueError/RuntimeError with terse text
                raise ProviderError(
                    "ModelLoadFailed",
                    f"cannot load GGUF model {path}: {type(exc).__name__}: {exc}",
                    retryable=False,
                ) from exc
            self._use_chat = bool(self.chat_format) or "tokenizer.chat_template" in llama.metadata
            log.info(
                "loaded %s (n_ctx=%d, %s prompt format)",
                path, llama.n_ctx(), self.chat_format or ("gguf chat template" if self._use_chat else "plain"),
            )
            self._llama = llama
            return llama

    # --- streaming --------------------------------------------------------------------------

    def stream(
        self, system: str, messages: list[ChatMessage], params: GenerationParams
    ) -> Iterator[ProviderEvent]:
        """Yield TextDelta*, Usage, then one Stop; or raise ProviderError. Holds the model's lock
        from the first ``next()`` until the stream ends or is closed."""
        if not messages:
            raise ValueError("messages must not be empty")
        return self._stream(system, list(messages), params)

    def _stream(
        self, system: str, messages: list[ChatMessage], params: GenerationParams
    ) -> Iterator[ProviderEvent]:
        llama = self._load()
        with self._generate_lock:
            count = self._prompt_counter(llama, system)
            messages, prompt_tokens = _fit(messages, count, self.n_ctx, params.max_tokens)
            max_tokens = min(params.max_tokens, self.n_ctx - prompt_tokens)
            text: list[str] = []
            finish_reason: str | None = None
            chunks = self._chunks(llama, system, messages, params, max_tokens)
            try:
                for piece, reason in chunks:
                    if piece:
                        text.append(piece)
                        yield TextDelta(piece)
                    if reason:
                        finish_reason = reason
            except ProviderError:
                raise
            except Exception as exc:
                code = "ContextTooLong" if "exceed context window" in str(exc) else "GenerationFailed"
                raise ProviderError(
                    code, f"llama.cpp failed on {self.model_path.name}: {exc}", retryable=False,
                    after_tokens=bool(text),
                ) from exc
            finally:
                chunks.close()  # stop llama.cpp generating if our consumer walked away
            if finish_reason == "length":
                output_tokens = max_tokens
            else:
                output_tokens = len(llama.tokenize("".join(text).encode(), add_bos=False)) if text else 0
            yield Usage(input_tokens=prompt_tokens, output_tokens=output_tokens)
            yield Stop(_FINISH_REASONS.get(finish_reason or "stop", finish_reason or "end_turn"))

    def _chunks(
        self, llama: Llama, system: str, messages: list[ChatMessage], params: GenerationParams,
        max_tokens: int,
    ) -> Iterator[tuple[str | None, str | None]]:
        """(text, finish_reason) pairs from llama.cpp's streaming API, chat or plain."""
        common: dict[str, Any] = {
            "stream": True, "max_tokens": max_tokens, "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if self._use_chat:
            stream = llama.create_chat_completion(
                messages=_chat_messages(system, messages),  # type: ignore[arg-type]
                stop=list(params.stop) or None, **common,
            )
            for chunk in stream:
                choice = chunk["choices"][0]  # type: ignore[index]
                yield choice["delta"].get("content"), choice.get("finish_reason")  # type: ignore[union-attr]
        else:
            stream = llama.create_completion(
                prompt=_plain_prompt(system, messages), stop=_PLAIN_STOPS + list(params.stop), **common
            )
            for chunk in stream:
                choice = chunk["choices"][0]  # type: ignore[index]
                yield choice.get("text"), choice.get("finish_reason")

    def _prompt_counter(self, llama: Llama, system: str) -> Callable[[list[ChatMessage]], int]:
        """A function: messages -> prompt tokens for this model's prompt format."""

        def tokens(text: str) -> int:
            return len(llama.tokenize(text.encode(), add_bos=True, special=True))

        if not self._use_chat:
            return lambda msgs: tokens(_plain_prompt(system, msgs))
        template = llama.metadata.get("tokenizer.chat_template")
        if template and not self.chat_format:  # exact: render the GGUF template as llama.cpp will
            from jinja2 import TemplateError
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=_token_text(llama, llama.token_eos()),
                bos_token=_token_text(llama, llama.token_bos()),
            )

            def exact(msgs: list[ChatMessage]) -> int:
                try:
                    rendered = formatter(messages=_chat_messages(system, msgs))  # type: ignore[arg-type]
                except TemplateError:  # a template that rejects this shape: fall back to the estimate
                    return estimate(msgs)
                return len(llama.tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special,
                                          special=True))

            return exact

        def estimate(msgs: list[ChatMessage]) -> int:
            contents = [system] + [m.content for m in msgs] if system else [m.content for m in msgs]
            return sum(tokens(c) + _PER_MESSAGE_OVERHEAD for c in contents) + _PER_MESSAGE_OVERHEAD

        return estimate


def _fit(
    messages: list[ChatMessage], count: Callable[[list[ChatMessage]], int], n_ctx: int, max_tokens: int
) -> tuple[list[ChatMessage], int]:
    """Drop the oldest history until prompt + max_tokens fits n_ctx; keep the last message always.

    The kept history starts with a user turn (chat templates such as Gemma's insist on
    user/assistant alternation). Raises ContextTooLong when even the shortest prompt leaves less
    than min(max_tokens, _MIN_ANSWER_TOKENS) tokens for the answer.
    """
    prompt_tokens = count(messages)
    dropped = 0
    while prompt_tokens + max_tokens > n_ctx and len(messages) > 1:
        messages = messages[1:]
        while len(messages) > 1 and messages[0].role != "user":
            messages = messages[1:]
            dropped += 1
        dropped += 1
        prompt_tokens = count(messages)
    if dropped:
        log.warning("prompt over n_ctx=%d: dropped the %d oldest history message(s)", n_ctx, dropped)
    needed = min(max_tokens, _MIN_ANSWER_TOKENS)
    if prompt_tokens + needed > n_ctx:
        raise ProviderError(
            "ContextTooLong",
            f"the prompt is {prompt_tokens} tokens even without history; with {needed} tokens for the "
            f"answer it does not fit the model's context window of {n_ctx} tokens "
            "(shorten the question or the retrieved sources, or raise n_ctx)",
            retryable=False,
        )
    return messages, prompt_tokens


def _chat_messages(system: str, messages: list[ChatMessage]) -> list[dict[str, str]]:
    chat = [{"role": m.role, "content": m.content} for m in messages]
    if system:
        chat.insert(0, {"role": "system", "content": system})
    return chat


def _plain_prompt(system: str, messages: list[ChatMessage]) -> str:
    lines = [f"{_PLAIN_ROLES['system']}: {system}"] if system else []
    lines += [f"{_PLAIN_ROLES[m.role]}: {m.content}" for m in messages]
    lines.append(f"{_PLAIN_ROLES['assistant']}:")
    return "\n".join(lines)


def _token_text(llama: Llama, token: int) -> str:
    return llama.detokenize([token], special=True).decode("utf-8", errors="ignore") if token >= 0 else ""
