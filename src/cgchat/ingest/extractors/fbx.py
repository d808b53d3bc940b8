"""Autodesk FBX models via ufbx (the ``pyufbx`` package): scene contents, animation range, texture files.

ufbx parses binary and ASCII FBX without running anything from the file and without loading external
files, so texture references are only read as names and checked on disk here.

Known binding limitation (pyufbx 0.0.7): ``Mesh.vertex_positions`` hands out ufbx's double-precision
positions as a float32 array, i.e. garbage, so bounds are only computed when the binding returns float64
positions and are None otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import Dependency, Extraction, ExtractionError
from .common import (
    cap,
    guarded,
    local_dependency,
    model_row,
    model_summary,
    name_line,
    name_lines,
    require_nonempty,
)

_UFBX_FORMAT_FBX = 1  # ufbx_file_format: 0 unknown, 1 FBX, 2 OBJ, 3 MTL
_AXIS_NAMES = {
    "COORDINATE_AXIS_POSITIVE_X": "X",
    "COORDINATE_AXIS_NEGATIVE_X": "-X",
    "COORDINATE_AXIS_POSITIVE_Y": "Y",
    "COORDINATE_AXIS_NEGATIVE_Y": "-Y",
    "COORDINATE_AXIS_POSITIVE_Z": "Z",
    "COORDINATE_AXIS_NEGATIVE_Z": "-Z",
}


@guarded("FBX")
def extract_fbx(path: Path) -> Extraction:
    """Read an FBX file into a ``models_3d`` row, names, animation facts and texture dependencies."""
    import ufbx

    require_nonempty(path)
    try:
        scene = ufbx.load_file(str(path))
    except Exception as exc:  # UfbxError and its subclasses, or anything the binding lets through
        raise ExtractionError(f"{path.name}: cannot read FBX: {exc}") from exc
    try:
        if scene.metadata.file_format != _UFBX_FORMAT_FBX:  # ufbx also reads OBJ/MTL content
            raise ExtractionError(f"{path.name}: not an FBX file")
        if not scene.metadata.version:  # ufbx is lenient: a bare magic number parses as an empty scene
            raise ExtractionError(f"{path.name}: FBX without a version header (truncated or corrupt)")
        return _extract(path, scene)
    finally:
        scene.close()


def _extract(path: Path, scene: Any) -> Extraction:
    settings, info = scene.settings, scene.metadata
    nodes = [node for node in scene.nodes if not node.is_root]
    meshes = list(scene.meshes)
    materials = [m.name for m in scene.materials]
    object_names = [node.name for node in nodes if node.mesh is not None]
    fps = _positive(settings.frames_per_second)
    stacks = [_stack_info(stack, fps) for stack in scene.anim_stacks]
    timed = [s for s in stacks if s["frame_start"] is not None]
    dependencies, textures = _texture_dependencies(path, scene.textures)

    row = model_row(
        "fbx",
        mesh_count=len(meshes),
        face_count=sum(m.num_triangles for m in meshes),
        vertex_count=sum(m.num_vertices for m in meshes),
        material_count=len(materials),
        node_count=len(nodes),
        bounds=_bounds(nodes),
        fps=fps,
        frame_start=min((s["frame_start"] for s in timed), default=None),
        frame_end=max((s["frame_end"] for s in timed), default=None),
    )
    metadata: dict[str, Any] = {
        "creator": info.creator or None,
        "fbx_version": info.version,
        "ascii": bool(info.ascii),
        "up_axis": _AXIS_NAMES.get(settings.axes.up.name),
        "meters_per_unit": _positive(settings.unit_meters),
        "nodes": cap([n.name for n in nodes]),
        "objects": cap(object_names),
        "meshes": cap(
            [
                {
                    "name": m.name,
                    "faces": m.num_faces,
                    "triangles": m.num_triangles,
                    "vertices": m.num_vertices,
                }
                for m in meshes
            ]
        ),
        "polygon_count": sum(m.num_faces for m in meshes),
        "materials": cap(materials),
        "textures": cap(textures),
        "animation_stacks": cap(stacks),
        "camera_count": len(scene.cameras),
        "light_count": len(scene.lights),
        "bone_count": len(scene.bones),
    }
    text = [model_summary("FBX model", row)]
    text += name_lines(objects=object_names, meshes=[m.name for m in meshes], materials=materials)
    if stacks:
        text.append(name_line("animations", [s["name"] for s in stacks]))
    if textures:
        text.append(name_line("textures", [Path(t["file"]).name for t in textures if t["file"]]))
    if info.creator:
        text.append(f"created by {info.creator}")
    return Extraction(metadata={"fbx": metadata}, text=text, type_row=row, dependencies=dependencies)


def _stack_info(stack: Any, fps: float | None) -> dict[str, Any]:
    """An animation stack's name and time range, in seconds and (when the frame rate is known) frames.

    Note that Blender's exporter re-bases each action's stack to start at time 0.
    """
    begin, end = float(stack.time_begin), float(stack.time_end)
    has_range = end >= begin and (begin, end) != (0.0, 0.0)
    return {
        "name": stack.name,
        "time_begin_s": round(begin, 6),
        "time_end_s": round(end, 6),
        "frame_start": round(begin * fps) if fps and has_range else None,
        "frame_end": round(end * fps) if fps and has_range else None,
    }


def _texture_dependencies(path: Path, textures: Any) -> tuple[list[Dependency], list[dict[str, Any]]]:
    """Texture files as dependencies (relative name first, absolute as a fallback) plus a metadata list.

    Textures whose image is embedded in the FBX are listed in metadata but are not dependencies.
    """
    dependencies: list[Dependency] = []
    listed: list[dict[str, Any]] = []
    seen: set[str] = set()
    for texture in textures:
        relative, absolute = texture.relative_filename or "", texture.absolute_filename or ""
        raw = relative or absolute or texture.filename or ""
        embedded = texture.content is not None
        listed.append({"name": texture.name, "file": raw or None, "embedded": embedded})
        if not raw or embedded or raw in seen:
            continue
        seen.add(raw)
        alternatives = tuple(p for p in (absolute, texture.filename or "") if p and p != raw)
        dependencies.append(local_dependency("texture", raw, path.parent, alternatives))
    return dependencies, listed


def _bounds(nodes: list[Any]) -> list[list[float]] | None:
    """World-space bounds of all mesh vertices, when the binding returns trustworthy (float64) positions."""
    import numpy as np

    corners = []
    for node in nodes:
        if node.mesh is None:
            continue
        positions = node.mesh.vertex_positions
        if positions is None or positions.dtype != np.float64:
            return None
        matrix = np.asarray(node.node_to_world, dtype=np.float64)
        world = positions @ matrix[:3, :3].T + matrix[:3, 3]
        corners += [world.min(axis=0), world.max(axis=0)]
    if not corners:
        return None
    stacked = np.array(corners)
    if not np.all(np.isfinite(stacked)):
        return None
    return [
        [round(float(v), 6) for v in stacked.min(axis=0)],
        [round(float(v), 6) for v in stacked.max(axis=0)],
    ]


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
