"""Preview icons of results: thumbnails downloaded (in a job) to the cache folder, then loaded into
a bpy.utils.previews collection (on the main thread) and shown in the results list."""

from __future__ import annotations

import os

import bpy
import bpy.utils.previews

from . import client

_collection = None


def key(base_url: str, asset_id: int) -> str:
    return f"{client.server_key(base_url)}:{int(asset_id)}"


def icon_id(base_url: str, asset_id: int) -> int:
    """The loaded preview's icon id, 0 when there is none (yet)."""
    k = key(base_url, asset_id)
    if _collection is None or k not in _collection:
        return 0
    return _collection[k].icon_id


def has(base_url: str, asset_id: int) -> bool:
    return _collection is not None and key(base_url, asset_id) in _collection


def missing(base_url: str, asset_ids: list[int]) -> list[int]:
    return [i for i in asset_ids if not has(base_url, i)]


def download(values: dict, asset_ids: list[int]) -> dict[int, str]:
    """Worker thread (no bpy): fetch each thumbnail into the cache; {asset_id: file}. An asset
    without a thumbnail is skipped; an unreachable server fails the job."""
    api = client.Client(values["base_url"], values["token"], values["timeout"])
    folder = os.path.join(values["cache_dir"], "thumbs", client.server_key(api.base_url))
    os.makedirs(folder, exist_ok=True)
    files = {}
    for asset_id in asset_ids:
        data = api.thumbnail(asset_id)
        if not data:
            continue
        path = os.path.join(folder, f"{int(asset_id)}{client.image_suffix(data)}")
        with open(path, "wb") as out:
            out.write(data)
        files[asset_id] = path
    return files


def load(base_url: str, files: dict[int, str]) -> int:
    """Main thread: load downloaded thumbnails as previews; returns how many were added."""
    added = 0
    for asset_id, path in files.items():
        k = key(base_url, asset_id)
        if _collection is not None and k not in _collection and os.path.isfile(path):
            _collection.load(k, path, "IMAGE")
            added += 1
    return added


def register() -> None:
    global _collection
    _collection = bpy.utils.previews.new()


def unregister() -> None:
    global _collection
    if _collection is not None:
        bpy.utils.previews.remove(_collection)
    _collection = None
