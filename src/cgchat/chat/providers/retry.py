"""Retrying a model stream, the same way for every provider: replay the whole request only while
no text has reached the caller, with exponential backoff and jitter; never after."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator

from cgchat.chat.providers.base import ProviderError, ProviderEvent


class RetryBeforeText(Exception):
    """A retryable failure arrived before any text: safe to replay the whole request."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def backoff_delay(attempt: int, base: float, maximum: float) -> float:
    """Exponential backoff with jitter (half fixed, half random) so that concurrent streams
    throttled together do not all come back at the same instant."""
    delay = min(maximum, base * 2 ** (attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)


def stream_with_retries(
    attempt_once: Callable[[], Iterator[ProviderEvent]], *, max_attempts: int, base_delay: float,
    max_delay: float, who: str,
) -> Iterator[ProviderEvent]:
    """Run ``attempt_once`` until it streams through; it raises RetryBeforeText when replaying is safe."""
    for attempt in range(1, max_attempts + 1):
        try:
            yield from attempt_once()
            return
        except RetryBeforeText as exc:
            if attempt == max_attempts:
                raise ProviderError(
                    exc.code, f"{who} kept failing before any text ({exc.message}); gave up after {attempt} attempts",
                    retryable=True, after_tokens=False,
                ) from exc
            time.sleep(backoff_delay(attempt, base_delay, max_delay))
