"""Operators: search, check the server, append/link from a .blend, images as plane or texture, videos.

Each one reads what it needs on the main thread, runs the network part as a job (jobs.submit) and
returns at once; the job's completion changes the scene. A file that already exists on this
machine (the indexed path on shared storage) is used at once, no job needed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from . import client, importers, jobs, preferences, previews, properties

TYPE_NAMES = {
    "blend": "a .blend file",
    "image": "an image",
    "video": "a video",
    "model": "a 3D model",
    "document": "a document",
}


def wrong_type(name: str, asset_type: str, wanted: tuple[str, ...]) -> str:
    want = " or ".join(TYPE_NAMES.get(t, t) for t in wanted)
    return f"{name} is {TYPE_NAMES.get(asset_type, 'another kind of file')}, not {want}"


def _report_error(op: bpy.types.Operator, message: str) -> set[str]:
    jobs.set_status(message, "ERROR")
    op.report({"ERROR"}, message)
    return {"CANCELLED"}


def _find_result(context: bpy.types.Context, asset_id: int) -> properties.CGCHAT_Result | None:
    for result in properties.get(context).results:
        if result.asset_id == asset_id:
            return result
    return None


def _undo_push(message: str) -> None:
    """An asynchronous change lands outside its operator: give it its own undo step."""
    if bpy.app.background:
        return
    try:
        bpy.ops.ed.undo_push(message=message)
    except RuntimeError:
        pass


def with_asset_file(
    op: bpy.types.Operator,
    context: bpy.types.Context,
    asset_id: int,
    label: str,
    use: Callable[[str, dict], str],
    want_type: tuple[str, ...] = (),
) -> set[str]:
    """Run ``use(path, info) -> status message`` with the asset's file on this machine: now when the
    indexed path exists here, else after a download job. ``info`` has the asset's name/type/path."""
    values = preferences.settings(context)
    result = _find_result(context, asset_id)
    info = None
    if result is not None:
        info = {
            "id": asset_id,
            "name": result.name,
            "type": result.asset_type,
            "path": result.path,
            "size_bytes": int(result.size_bytes) if result.size_bytes.isdigit() else None,
        }
        if want_type and info["type"] not in want_type:
            return _report_error(op, wrong_type(info["name"], info["type"], want_type))
        local = client.local_file(info["path"], values["prefer_local"])
        if local:
            try:
                message = use(local, info)
            except importers.AddonError as exc:
                return _report_error(op, str(exc))
            jobs.set_status(message, "INFO")
            op.report({"INFO"}, message)
            return {"FINISHED"}

    def work() -> tuple[str, dict]:  # worker thread: no bpy
        api = preferences.make_client(values)
        details = info
        if details is None:  # called by id alone (scripts): ask the server what the asset is
            a = api.asset(asset_id)
            details = {
                "id": asset_id,
                "name": a["name"],
                "type": a["asset_type"],
                "path": a["path"],
                "size_bytes": a.get("size_bytes"),
            }
        if want_type and details["type"] not in want_type:
            raise client.ApiError(wrong_type(details["name"], details["type"], want_type))
        path = client.fetch_file(
            api,
            asset_id,
            details["name"],
            details["path"],
            details["size_bytes"],
            values["cache_dir"],
            values["prefer_local"],
        )
        return path, details

    def done(outcome: tuple[str, dict]) -> None:  # main thread
        path, details = outcome
        try:
            message = use(path, details)
        except importers.AddonError as exc:
            jobs.set_status(str(exc), "ERROR")
            return
        _undo_push(f"cgchat: {label}")
        jobs.set_status(message, "INFO")

    jobs.submit(label, work, done, busy_text=f"{label}: downloading asset {asset_id}")
    op.report({"INFO"}, f"{label}: downloading asset {asset_id}...")
    return {"FINISHED"}


class CGCHAT_OT_search(bpy.types.Operator):
    bl_idname = "cgchat.search"
    bl_label = "Search Assets"
    bl_description = "Search the cgchat asset library (runs in the background)"

    def execute(self, context: bpy.types.Context) -> set[str]:
        state = properties.get(context)
        query = state.query.strip()
        if not query:
            return _report_error(self, "type something to search for")
        values = preferences.settings(context)
        state.generation += 1
        generation = state.generation
        mode, asset_type, limit = state.mode, state.asset_type, state.limit

        def work() -> dict:
            api = preferences.make_client(values)
            return api.search(query, mode, None if asset_type == "ALL" else asset_type, limit)

        def done(reply: dict) -> None:
            show_results(generation, values, query, reply)

        jobs.submit(f"Search for {query!r}", work, done, busy_text=f"Searching for {query!r}")
        return {"FINISHED"}


def show_results(generation: int, values: dict, query: str, reply: dict) -> None:
    """Main thread: fill the results list (unless a newer search started) and fetch previews."""
    state = properties.get()
    if state.generation != generation:
        return  # a newer search is on its way
    state.results.clear()
    for item in reply.get("results", []):
        result = state.results.add()
        result.name = item.get("name") or os.path.basename(item.get("path", ""))
        result.asset_id = int(item["id"])
        result.path = item.get("path") or ""
        result.asset_type = item.get("type") or "other"
        result.extension = item.get("extension") or ""
        result.size_bytes = str(item.get("size_bytes") or "")
        result.score = float(item.get("score") or 0.0)
        result.matched_by = ", ".join(item.get("matched_by") or [])
        result.description = (item.get("description") or "")[:2000]
        result.time_s = item["time_s"] if item.get("time_s") is not None else -1.0
        result.timecode = item.get("timecode") or ""
        result.datablocks_json = json.dumps(properties.datablocks(item.get("metadata") or {}))
    state.active = 0
    count = len(state.results)
    how = "+".join(reply.get("retrievers") or []) or reply.get("mode", "")
    jobs.set_status(
        f"{count} result{'s' if count != 1 else ''} for {query!r}" + (f" ({how})" if how else ""),
        "INFO" if count else "WARNING",
    )
    wanted = previews.missing(values["base_url"], [r.asset_id for r in state.results])
    if wanted:
        base_url = values["base_url"]
        jobs.submit(
            "Loading previews",
            lambda: previews.download(values, wanted),
            lambda files: previews.load(base_url, files),
            lambda exc: print(f"cgchat: previews not loaded: {jobs.describe(exc)}"),
            quiet=True,
        )


class CGCHAT_OT_check_server(bpy.types.Operator):
    bl_idname = "cgchat.check_server"
    bl_label = "Check Connection"
    bl_description = "Ask the server for its health (database, number of assets)"

    def execute(self, context: bpy.types.Context) -> set[str]:
        values = preferences.settings(context)

        def done(health: dict) -> None:
            level = "INFO" if health.get("status") == "ok" else "WARNING"
            jobs.set_status(
                f"{values['base_url']}: {health.get('status')}, {health.get('assets')} assets", level
            )

        jobs.submit(
            f"Connection to {values['base_url']}",
            lambda: preferences.make_client(values).health(),
            done,
            busy_text=f"Connecting to {values['base_url']}",
        )
        return {"FINISHED"}


class CGCHAT_OT_append(bpy.types.Operator):
    bl_idname = "cgchat.append"
    bl_label = "Append"
    bl_description = "Append (or link) an object or collection from the selected .blend result"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 - Blender reads a set

    asset_id: IntProperty(name="Asset ID", description="The .blend asset")
    kind: EnumProperty(
        name="Kind", items=[("OBJECT", "Object", ""), ("COLLECTION", "Collection", "")], default="OBJECT"
    )
    datablock: StringProperty(
        name="Name", description="Object or collection name (empty: the panel's choice)"
    )
    link: BoolProperty(
        name="Link", default=False, description="Link from the library instead of appending a copy"
    )

    @classmethod
    def description(cls, context, properties_):
        return (
            "Link (reference) the chosen object or collection from the .blend"
            if properties_.link
            else "Append (copy) the chosen object or collection from the .blend into this file"
        )

    def execute(self, context: bpy.types.Context) -> set[str]:
        kind, name = self.kind, self.datablock
        if not name:
            choice = properties.get(context).datablock
            if ":" not in choice:
                return _report_error(self, "choose an object or collection first")
            kind, name = choice.split(":", 1)
        where = importers.capture(context)
        verb = "Linked" if self.link else "Appended"
        link = self.link

        def use(path: str, info: dict) -> str:
            block = importers.load_datablock(path, kind, name, link, where)
            return f"{verb} {kind.lower()} {block.name} from {info['name']}"

        return with_asset_file(self, context, self.asset_id, f"{verb[:-2]} {name}", use, ("blend",))


class CGCHAT_OT_import_image(bpy.types.Operator):
    bl_idname = "cgchat.import_image"
    bl_label = "Import Image"
    bl_description = "Use the image result as a textured plane or as a texture on the active material"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 - Blender reads a set

    asset_id: IntProperty(name="Asset ID")
    target: EnumProperty(
        name="As",
        default="PLANE",
        items=[
            ("PLANE", "Plane", "A new plane with the image's proportions at the 3D cursor"),
            (
                "TEXTURE",
                "Texture",
                "An Image Texture node feeding Base Color of the active object's material",
            ),
        ],
    )

    @classmethod
    def description(cls, context, properties_):
        return (
            "A new plane with the image's proportions, textured with it, at the 3D cursor"
            if properties_.target == "PLANE"
            else "An Image Texture node into Base Color of the active object's active material"
        )

    def execute(self, context: bpy.types.Context) -> set[str]:
        where = importers.capture(context)
        if self.target == "TEXTURE" and not where["active_object"]:
            return _report_error(self, "select an object first: the image goes on its active material")
        target = self.target

        def use(path: str, info: dict) -> str:
            if target == "PLANE":
                obj = importers.image_plane(path, where)
                return f"Added image plane {obj.name}"
            material, node = importers.image_texture(path, where)
            return f"Added {node.image.name} to material {material.name}"

        return with_asset_file(self, context, self.asset_id, "Image " + target.lower(), use, ("image",))


class CGCHAT_OT_open_video(bpy.types.Operator):
    bl_idname = "cgchat.open_video"
    bl_label = "Open Video"
    bl_description = "Load the video as a movie clip, or open it in the system's player"

    asset_id: IntProperty(name="Asset ID")
    how: EnumProperty(
        name="How",
        default="CLIP",
        items=[
            ("CLIP", "Movie Clip", "Load as a movie clip (Movie Clip Editor)"),
            ("SYSTEM", "System Player", "Open with the operating system's default application"),
        ],
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        how = self.how
        result = _find_result(context, self.asset_id)
        at = f" (matched at {result.timecode})" if result is not None and result.timecode else ""

        def use(path: str, info: dict) -> str:
            if how == "SYSTEM":
                importers.open_externally(path)
                return f"Opened {info['name']} in the system player{at}"
            clip = importers.movie_clip(path)
            return f"Loaded movie clip {clip.name}, {clip.frame_duration} frames{at}"

        return with_asset_file(self, context, self.asset_id, "Open video", use, ("video",))


classes = (
    CGCHAT_OT_search,
    CGCHAT_OT_check_server,
    CGCHAT_OT_append,
    CGCHAT_OT_import_image,
    CGCHAT_OT_open_video,
)
