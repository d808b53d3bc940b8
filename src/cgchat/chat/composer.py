"""The no-LLM answer: a grounded summary of the results, streamed like a model's answer.

Always available (no model, no network), and honest by construction: every sentence comes from
the search results, each asset carries its citation number.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from cgchat.chat.providers.base import ChatMessage, GenerationParams, ProviderEvent, Stop, TextDelta, Usage

_ENGINES = {"CYCLES": "Cycles", "BLENDER_EEVEE": "Eevee", "BLENDER_EEVEE_NEXT": "Eevee", "BLENDER_WORKBENCH": "Workbench"}
_PLURAL = {"image": "images", "video": "videos", "blend": ".blend files", "model": "3D models",
           "document": "documents", "other": "other files"}
SHOWN = 6


class NoLLMComposer:
    name = "none"
    model = "grounded-summary"

    def compose(self, question: str, results: list[Any], filters: dict[str, Any]) -> Iterator[ProviderEvent]:
        text = answer_text(question, results, filters)
        for piece in re.findall(r"\S+\s*|\s+", text):
            yield TextDelta(piece)
        yield Usage(input_tokens=None, output_tokens=None)
        yield Stop("end_turn")

    def stream(self, system: str, messages: list[ChatMessage], params: GenerationParams) -> Iterator[ProviderEvent]:
        raise NotImplementedError("the composer answers from search results: use compose()")


def answer_text(question: str, results: list[Any], filters: dict[str, Any]) -> str:
    if not results:
        hint = " Try fewer or different words, or another search mode." if filters else " Try other words."
        return f'I found no indexed assets matching "{question}".{hint}'
    counts = Counter(r.type for r in results)
    summary = ", ".join(f"{n} {_PLURAL.get(t, t) if n != 1 else t}" for t, n in counts.most_common())
    filter_words = _filter_words(filters)
    lines = [f'For "{question}" I found {len(results)} matching assets ({summary}){filter_words}. The best matches:', ""]
    for n, result in enumerate(results[:SHOWN], 1):
        facts = key_facts(result)
        lines.append(f"- {result.name} [{n}]" + (f": {facts}" if facts else ""))
    if len(results) > SHOWN:
        lines += ["", f"{len(results) - SHOWN} more are listed in the sources."]
    return "\n".join(lines)


def key_facts(result: Any) -> str:
    """The few facts an artist asks about first, per asset type."""
    meta = result.metadata or {}
    facts: list[str] = []
    if blend := meta.get("blend"):
        facts += [_ENGINES.get(blend.get("render_engine") or "", blend.get("render_engine") or ""),
                  _res(blend.get("resolution_x"), blend.get("resolution_y")),
                  _frames(blend.get("frame_start"), blend.get("frame_end"), blend.get("fps")),
                  f"Blender {blend['blender_version']}" if blend.get("blender_version") else ""]
    elif video := meta.get("video"):
        facts += [str(video.get("codec") or ""), _res(video.get("width"), video.get("height")),
                  f"{video['fps']:g} fps" if video.get("fps") else "",
                  f"{video['duration_s']:.1f} s" if video.get("duration_s") else ""]
    elif image := meta.get("image") or meta.get("exr"):
        facts += [str(image.get("format") or "EXR"), _res(image.get("width"), image.get("height")),
                  str(image.get("mode") or "")]
    if getattr(result, "timecode", None):
        facts.append(f"looks closest at {result.timecode}")
    path_info = meta.get("path_info") or {}
    for key in ("shot", "version_token"):
        if path_info.get(key):
            facts.append(str(path_info[key]))
    return ", ".join(f for f in facts if f)


def _filter_words(filters: dict[str, Any]) -> str:
    if not filters:
        return ""
    parts = [f"{k.replace('_', ' ')} {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in filters.items()]
    return f", filtered by {'; '.join(parts)}"


def _res(w: Any, h: Any) -> str:
    return f"{w}x{h}" if w and h else ""


def _frames(start: Any, end: Any, fps: Any) -> str:
    if start is None or end is None:
        return ""
    return f"frames {start}-{end}" + (f" at {fps:g} fps" if fps else "")
