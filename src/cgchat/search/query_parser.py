"""Filters a person says in words: "Blender files rendered with Cycles", "4K EXRs", "videos over 10s".

Only unambiguous phrasings become filters; everything else is left to ranking. The whole query
text still goes to the retrievers, since words like "turntable" carry meaning for both.
"""

from __future__ import annotations

import re

from cgchat.search.filters import Filters

_TYPE_WORDS = [
    (re.compile(r"\b(blender|\.?blend)\s+(files?|scenes?|projects?)\b|(^|\s)\.blend\b", re.I), "blend"),
    (re.compile(r"\b(videos?|clips?|movies?|footage|mp4s|movs)\b", re.I), "video"),
    (re.compile(r"\b(images?|pictures?|photos?|textures?|stills?|hdris?|pngs|jpe?gs|exrs|tiffs?)\b", re.I), "image"),
    (re.compile(r"\b(3d models?|meshes|fbx files?|gltf files?|glb files?|obj files?|usd (files?|layers?|stages?))\b", re.I), "model"),
    (re.compile(r"\b(documents?|spreadsheets?|csv files?|text files?|shot lists?)\b", re.I), "document"),
]
_ENGINE = re.compile(r"\b(cycles|eevee|workbench)\b", re.I)
_RESOLUTION = re.compile(r"\b(8k|6k|5k|4k|uhd|2k|1440p|1080p|full ?hd|fhd|720p|480p|(\d{3,5})\s?x\s?(\d{3,5}))\b", re.I)
_FPS = re.compile(r"\b(\d{2,3}(?:\.\d{1,3})?)\s?(?:fps|frames per second)\b", re.I)
_DURATION = re.compile(
    r"\b(over|longer than|more than|at least|under|shorter than|less than|at most)\s+(\d+(?:\.\d+)?)\s*"
    r"(s|sec|secs|seconds?|m|mins?|minutes?)\b",
    re.I,
)
_EXT = r"exr|png|jpe?g|tiff?|tga|psd|mp4|mov|mkv|fbx|glb|gltf|obj|usd|usda|usdc|usdz|csv"
_EXTENSION = re.compile(
    rf"(?:^|\s)\.({_EXT})\b"  # ".exr"
    rf"|\b({_EXT})s?\s+(?:files?|images?|textures?|renders?|clips?|sequences?)\b"  # "exr files", "png textures"
    r"|\b(exr|png|jpe?g|tiff?|tga|psd|mp4|mov|fbx|glb|obj)s\b",  # "EXRs"
    re.I,
)


def parse_filters(query: str) -> Filters:
    """Filters the query text asks for (possibly none)."""
    filters = Filters()
    for pattern, asset_type in _TYPE_WORDS:
        if pattern.search(query) and asset_type not in filters.asset_types:
            filters.asset_types.append(asset_type)
    filters.engines = sorted({m.lower() for m in _ENGINE.findall(query)})
    if filters.engines and not filters.asset_types:
        filters.asset_types = ["blend"]
    if m := _RESOLUTION.search(query):
        filters.resolution = _normalise_resolution(m)
    if m := _FPS.search(query):
        filters.fps = float(m.group(1))
    for word, number, unit in _DURATION.findall(query):
        seconds = float(number) * (60 if unit.lower().startswith("m") else 1)
        if word.lower() in ("over", "longer than", "more than", "at least"):
            filters.min_duration_s = seconds
        else:
            filters.max_duration_s = seconds
        if "video" not in filters.asset_types:
            filters.asset_types.append("video")
    exts = {next(g for g in m.groups() if g).lower() for m in _EXTENSION.finditer(query)}
    filters.extensions = sorted(exts)
    return filters


def _normalise_resolution(m: re.Match[str]) -> str:
    if m.group(2):
        return f"{int(m.group(2))}x{int(m.group(3))}"
    word = m.group(1).lower().replace(" ", "")
    return {"uhd": "4k", "fullhd": "1080p", "fhd": "1080p"}.get(word, word)


# Questions about appearance: how something looks, its colours, lighting, mood or composition.
_VISUAL_QUESTION = re.compile(
    r"\b(looks?|looking|appearance|visually|resembl\w*|similar to|style|styled|colou?r(s|ed|ful)?"
    r"|red|orange|yellow|green|blue|purple|pink|black|white|grey|gray|golden|dark|bright|moody|foggy|misty"
    r"|night|dusk|dawn|sunset|sunrise|daylight|lit|lighting|glow\w*|silhouette\w*|close-?ups?|wide shots?"
    r"|depict\w*|pictures? of|frames? (of|with|where)|shots? of|scenes? (of|with|where))\b",
    re.I,
)


def is_visual_question(query: str) -> bool:
    """Whether the question is about how assets look, so chat should also search pictures (CLIP)."""
    return bool(_VISUAL_QUESTION.search(query))
