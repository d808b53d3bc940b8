"""Citations in a streamed answer: ``[n]`` markers validated against the sources actually sent.

Tokens arrive in arbitrary pieces (``"see [1"``, ``"2] and"``), so text that might be the start of
a marker is held back until it is complete. A marker naming a source that was sent becomes a
``citation`` event (and stays in the text); one that names no source is removed from the text, so
the client never shows a citation that points nowhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_MARKER = re.compile(r"\[(\d{1,3})\]")
_PARTIAL = re.compile(r"\[\d{0,3}$")  # a suffix that could still become a marker


@dataclass(slots=True, frozen=True)
class Cited:
    n: int
    asset_id: int


class CitationFilter:
    def __init__(self, sources: dict[int, int]):
        """``sources``: citation number → asset id, for the sources sent to the client."""
        self._sources = sources
        self._held = ""
        self.cited: list[Cited] = []

    def feed(self, text: str) -> Iterator[str | Cited]:
        """Text that is safe to emit now, and citations as they complete."""
        buffer = self._held + text
        held = _PARTIAL.search(buffer)
        self._held = held.group(0) if held else ""
        ready = buffer[: len(buffer) - len(self._held)]
        yield from self._emit(ready)

    def flush(self) -> Iterator[str | Cited]:
        """End of stream: whatever was held is plain text."""
        rest, self._held = self._held, ""
        yield from self._emit(rest)

    def _emit(self, text: str) -> Iterator[str | Cited]:
        position = 0
        for match in _MARKER.finditer(text):
            n = int(match.group(1))
            before = text[position : match.start()]
            position = match.end()
            if n in self._sources:
                yield before + match.group(0)
                citation = Cited(n, self._sources[n])
                if citation not in self.cited:
                    self.cited.append(citation)
                yield citation
                continue
            if text[position : position + 1] in tuple(".,;:!?)"):
                before = before.rstrip(" ")  # "see [9]." must not become "see ."
            if before:
                yield before
        if position < len(text):
            yield text[position:]
