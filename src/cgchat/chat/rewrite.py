"""Follow-up questions made standalone, so retrieval sees what the user means.

"only the Eevee ones" after "Blender files with a castle" means "Blender files with a castle,
only the Eevee ones". This is rule-based (no LLM call before retrieval, so the first event stays
fast and the no-LLM mode works the same): a short turn that leans on the previous one — starts
with only/just/and/but/what about/which of/those/them, or names no subject of its own — is
joined to the previous standalone query.
"""

from __future__ import annotations

import re

_FOLLOW_UP = re.compile(
    r"^\s*(only|just|and|but|also|what about|how about|which of (them|those|these)|those|these|them|the ones|"
    r"same|now|any of (them|those)|show (me )?(only|just)|filter|exclude|without|with)\b",
    re.IGNORECASE,
)
_PRONOUN = re.compile(r"\b(them|those|these|ones|it|that one)\b", re.IGNORECASE)


def standalone_query(question: str, previous_queries: list[str]) -> str:
    """The query to retrieve with: the question itself, or joined to the last standalone query."""
    question = " ".join(question.split())
    if not previous_queries:
        return question
    leans_on_previous = bool(_FOLLOW_UP.match(question)) or (
        len(question.split()) <= 6 and bool(_PRONOUN.search(question))
    )
    return f"{previous_queries[-1]}, {question}" if leans_on_previous else question
