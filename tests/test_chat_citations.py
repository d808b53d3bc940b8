"""Citation markers validated while tokens stream in arbitrary pieces."""

from __future__ import annotations

import pytest

from cgchat.chat.citations import CitationFilter, Cited
from cgchat.chat.rewrite import standalone_query


def _run(chunks: list[str], sources: dict[int, int]) -> tuple[str, list[Cited]]:
    f = CitationFilter(sources)
    out: list[str | Cited] = []
    for chunk in chunks:
        out += list(f.feed(chunk))
    out += list(f.flush())
    return "".join(o for o in out if isinstance(o, str)), [o for o in out if isinstance(o, Cited)]


def test_markers_split_across_chunks_become_citations() -> None:
    text, cited = _run(["The dragon [", "1] and the castle [2", "]."], {1: 10, 2: 20})
    assert text == "The dragon [1] and the castle [2]."
    assert cited == [Cited(1, 10), Cited(2, 20)]


def test_markers_naming_no_source_are_removed() -> None:
    text, cited = _run(["a ghost [9]. see [3", "] and [1]"], {1: 10})
    assert " ".join(text.split()) == "a ghost. see and [1]"  # a removed marker may leave a double space
    assert cited == [Cited(1, 10)]


@pytest.mark.parametrize("chunks", [["end ["], ["array[0"], ["[12"], ["x [ 1 ]"]])
def test_unfinished_or_non_markers_pass_through(chunks: list[str]) -> None:
    text, cited = _run(chunks, {1: 10})
    assert text == "".join(chunks) and cited == []


@pytest.mark.parametrize(
    ("question", "previous", "expected"),
    [
        ("only the Eevee ones", ["Blender files with a castle"], "Blender files with a castle, only the Eevee ones"),
        ("what about the forest?", ["turntable videos"], "turntable videos, what about the forest?"),
        ("show me the oak tree model", ["turntable videos"], "show me the oak tree model"),
        ("which of them are 4K", ["castle renders"], "castle renders, which of them are 4K"),
        ("anything", [], "anything"),
    ],
)
def test_follow_ups_are_made_standalone(question: str, previous: list[str], expected: str) -> None:
    assert standalone_query(question, previous) == expected
