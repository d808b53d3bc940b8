"""The panel's state, on WindowManager.cgchat: query, mode, results, status (not saved in .blend files)."""

from __future__ import annotations

import json

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

MODES = [
    ("hybrid", "Hybrid", "Every retriever, fused"),
    ("semantic", "Semantic", "Meaning of the words (MiniLM)"),
    ("keyword", "Keyword", "Words, names and tokens like sh010 or v003"),
    ("visual", "Visual", "How things look (CLIP; the server needs a visual model)"),
]
TYPES = [
    ("ALL", "All Types", "Every asset type"),
    ("blend", "Blend", ".blend files"),
    ("image", "Image", "Pictures, textures, renders"),
    ("video", "Video", "Turntables, playblasts"),
    ("model", "Model", "glTF, OBJ, FBX, USD"),
    ("document", "Document", "Notes, shot lists"),
    ("other", "Other", "Anything else"),
]
TYPE_ICONS = {
    "blend": "FILE_BLEND",
    "image": "FILE_IMAGE",
    "video": "FILE_MOVIE",
    "model": "FILE_3D",
    "document": "FILE_TEXT",
}

_enum_cache: list[
    tuple[str, str, str, str, int]
] = []  # Blender needs Python to keep dynamic enum strings alive


def datablocks(metadata: dict) -> list[tuple[str, str]]:
    """(kind, name) pairs a .blend result offers for append/link: its objects, then its collections."""
    blend = (metadata or {}).get("blend") or {}
    pairs = [
        ("OBJECT", o["name"]) for o in blend.get("objects") or [] if isinstance(o, dict) and o.get("name")
    ]
    pairs += [
        ("COLLECTION", c["name"])
        for c in blend.get("collections") or []
        if isinstance(c, dict) and c.get("name")
    ]
    return pairs[:2000]


class CGCHAT_Result(bpy.types.PropertyGroup):
    # name: inherited from PropertyGroup (the file name)
    asset_id: IntProperty(name="Asset ID")
    path: StringProperty(name="Path")
    asset_type: StringProperty(name="Type")
    extension: StringProperty(name="Extension")
    size_bytes: StringProperty(name="Size")  # a string: IntProperty is 32-bit
    score: FloatProperty(name="Score")
    matched_by: StringProperty(name="Matched By")
    description: StringProperty(name="Description")
    time_s: FloatProperty(name="Time", default=-1.0, description="Video hits: where it matched (-1: none)")
    timecode: StringProperty(name="Timecode")
    datablocks_json: StringProperty(
        name="Datablocks", description="[[kind, name], ...] from the .blend metadata"
    )

    def datablock_list(self) -> list[tuple[str, str]]:
        try:
            return [tuple(p) for p in json.loads(self.datablocks_json or "[]")]
        except ValueError:
            return []


def _datablock_items(self, context):
    items = []
    result = active_result(self)
    if result is not None:
        for i, (kind, name) in enumerate(result.datablock_list()):
            icon = "OBJECT_DATA" if kind == "OBJECT" else "OUTLINER_COLLECTION"
            items.append((f"{kind}:{name}", name, f"{kind.title()} {name}", icon, i))
    if not items:
        items = [
            (
                "NONE",
                "(nothing listed)",
                "The server listed no objects or collections for this file",
                "ERROR",
                0,
            )
        ]
    _enum_cache[:] = items
    return _enum_cache


class CGCHAT_State(bpy.types.PropertyGroup):
    query: StringProperty(name="Query", description="Words, names or a question")
    mode: EnumProperty(name="Mode", items=MODES, default="hybrid")
    asset_type: EnumProperty(name="Type", items=TYPES, default="ALL")
    limit: IntProperty(name="Limit", default=20, min=1, max=200)
    results: CollectionProperty(type=CGCHAT_Result)
    active: IntProperty(name="Active Result", default=0)
    datablock: EnumProperty(
        name="Datablock",
        items=_datablock_items,
        description="Object or collection to append or link from the selected .blend",
    )
    status: StringProperty(name="Status")
    status_level: StringProperty(name="Status Level", default="INFO")
    busy: BoolProperty(name="Busy")
    generation: IntProperty(name="Search Generation", description="Newer searches make older replies stale")


def active_result(state) -> CGCHAT_Result | None:
    if 0 <= state.active < len(state.results):
        return state.results[state.active]
    return None


def get(context: bpy.types.Context | None = None) -> CGCHAT_State:
    return (context or bpy.context).window_manager.cgchat


classes = (CGCHAT_Result, CGCHAT_State)


def register() -> None:
    bpy.types.WindowManager.cgchat = PointerProperty(type=CGCHAT_State)


def unregister() -> None:
    del bpy.types.WindowManager.cgchat
