"""How names and queries are cut into words, shared by ingest and search so both agree.

Studio names are snake_case, camelCase and dotted (``dragon_turntable_v003.mp4``,
``DragonWing_L``, ``sh020_beauty_v002.0001.exr``); tokens like ``sh010`` and ``v003`` stay whole.
"""

from __future__ import annotations

import re

_ALNUM_RUN = re.compile(r"[^\W_]+", re.UNICODE)
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def words(text: str) -> list[str]:
    """Lower-case word tokens: split on anything not a letter or digit, and on camelCase humps."""
    out: list[str] = []
    for run in _ALNUM_RUN.findall(text):
        out.extend(part.lower() for part in _CAMEL.split(run) if part)
    return out


def trigrams(text: str) -> list[str]:
    """pg_trgm's trigram set: each word padded with two blanks before and one after.

    Implemented here (not with the pg_trgm extension) because the embedded Postgres ships only
    pgvector; the same arrays work on any Postgres through a GIN index.
    """
    grams: set[str] = set()
    for word in _ALNUM_RUN.findall(text.lower()):
        padded = f"  {word} "
        grams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return sorted(grams)


def trigram_similarity(a: str, b: str) -> float:
    """|A ∩ B| / |A ∪ B| over trigram sets, as pg_trgm's similarity()."""
    ta, tb = set(trigrams(a)), set(trigrams(b))
    if not ta or not tb:
        return 0.0
    return len(ta & tb) / len(ta | tb)
