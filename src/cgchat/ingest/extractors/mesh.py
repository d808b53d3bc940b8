"""glTF / GLB / OBJ models: geometry totals via trimesh, names and external files from the file itself.

trimesh supplies what needs the geometry decoded (triangle counts, world-space bounds) and is the check
that the binary data is readable. Names, generator info, animations and dependencies come from the glTF
JSON or the OBJ/MTL text, which say exactly what the file references; trimesh is told to skip materials
so it never decodes texture images, and its resolver only reads files inside the model's own folder.

The ``models_3d`` rows of every format (built with ``common.model_row``) agree:

- ``face_count`` counts triangles (polygons triangulated), the measure every format can give;
- ``vertex_count`` counts vertex positions as the file stores them (glTF splits vertices at UV seams);
- ``mesh_count`` counts distinct meshes as the format defines them, not instances.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from pathlib import Path
from typing import Any
from urllib.parse import unquote

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

# Required glTF extensions that change how geometry is stored; trimesh cannot decode them.
_GEOMETRY_EXTENSIONS = {"KHR_draco_mesh_compression", "EXT_meshopt_compression", "KHR_mesh_quantization"}
_MTL_MAP_KEYS = {"bump", "disp", "decal", "refl", "norm"}
_MTL_OPTION_ARGS = {  # map statement option -> how many values follow it (at most)
    **dict.fromkeys(
        ("-blendu", "-blendv", "-bm", "-boost", "-cc", "-clamp", "-imfchan", "-texres", "-type"), 1
    ),
    **{"-mm": 2, "-o": 3, "-s": 3, "-t": 3},
}


def extract_mesh(path: Path) -> Extraction:
    """Extract a .gltf, .glb or .obj file (dispatching on the suffix)."""
    suffix = path.suffix.lower()
    if suffix in (".gltf", ".glb"):
        return extract_gltf(path)
    if suffix == ".obj":
        return extract_obj(path)
    raise ExtractionError(f"{path.name}: not a glTF/GLB/OBJ file")


@guarded("glTF")
def extract_gltf(path: Path) -> Extraction:
    """Extract a glTF 2.0 model (.gltf JSON with external/embedded buffers, or binary .glb)."""
    require_nonempty(path)
    binary = path.suffix.lower() == ".glb"
    doc = _read_glb_json(path) if binary else _read_gltf_json(path)
    base = path.parent
    dependencies: list[Dependency] = []
    for buffer in _items(doc, "buffers"):
        uri = buffer.get("uri")
        if isinstance(uri, str) and not uri.startswith("data:"):
            dependencies.append(local_dependency("other", unquote(uri), base))
    textures: list[str] = []
    for index, image in enumerate(_items(doc, "images")):
        uri = image.get("uri")
        if isinstance(uri, str) and not uri.startswith("data:"):
            dependencies.append(local_dependency("texture", unquote(uri), base))
            textures.append(unquote(uri))
        else:
            textures.append(f"embedded:{image.get('name') or index}")

    required = _strings(doc.get("extensionsRequired"))
    compressed = sorted(set(required) & _GEOMETRY_EXTENSIONS)
    geometry_note = None
    if compressed:  # trimesh would read the placeholder accessors as zeros, not fail: do not ask it
        geometry = None
        geometry_note = "geometry stored with " + ", ".join(compressed) + "; bounds not computed"
    else:
        try:
            geometry = _trimesh_geometry(path, vertex_count=None)
        except ExtractionError as exc:
            if not any(d.kind == "other" for d in dependencies):
                raise  # self-contained: the file itself is broken
            # A separate buffer is missing, outside the folder or broken; that file is indexed on its own.
            geometry = None
            geometry_note = str(exc)
    if geometry is None:  # counts as the JSON declares them; world bounds need the decoded positions
        geometry = {**_gltf_declared_counts(doc), "bounds": None}

    asset = doc.get("asset") if isinstance(doc.get("asset"), dict) else {}
    mesh_names = _names(_items(doc, "meshes"), "mesh")
    material_names = _names(_items(doc, "materials"), "material")
    node_names = _names(_items(doc, "nodes"), "node")
    object_names = [n for n, node in zip(node_names, _items(doc, "nodes"), strict=True) if "mesh" in node]
    animations = _gltf_animations(doc)
    metadata: dict[str, Any] = {
        "generator": asset.get("generator"),
        "gltf_version": asset.get("version"),
        "copyright": asset.get("copyright"),
        "units": "meters",  # fixed by the glTF specification
        "up_axis": "Y",
        "meshes": cap(mesh_names),
        "materials": cap(material_names),
        "nodes": cap(node_names),
        "objects": cap(object_names),
        "textures": cap(textures),
        "animations": cap(animations),
        "scene_count": len(_items(doc, "scenes")),
        "camera_count": len(_items(doc, "cameras")),
        "skin_count": len(_items(doc, "skins")),
        "extensions_used": cap(_strings(doc.get("extensionsUsed"))),
        "extensions_required": cap(required),
    }
    if "instances" in geometry:
        metadata["instance_count"] = geometry["instances"]
    if geometry_note:
        metadata["geometry_note"] = geometry_note
    fmt = "glb" if binary else "gltf"
    row = model_row(
        fmt,
        mesh_count=len(mesh_names),
        face_count=geometry["faces"],
        vertex_count=geometry["vertices"],
        material_count=len(material_names),
        node_count=len(node_names),
        bounds=geometry["bounds"],
    )
    text = [model_summary("glTF binary model" if binary else "glTF model", row)]
    text += name_lines(objects=object_names, meshes=mesh_names, materials=material_names)
    if animations:
        text.append(name_line("animations", [a["name"] for a in animations]))
    if asset.get("generator"):
        text.append(f"exported by {asset['generator']}")
    return Extraction(metadata={"gltf": metadata}, text=text, type_row=row, dependencies=dependencies)


@guarded("OBJ")
def extract_obj(path: Path) -> Extraction:
    """Extract a Wavefront OBJ with its .mtl material libraries and their texture maps."""
    require_nonempty(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExtractionError(f"{path.name}: cannot read: {exc}") from exc
    if b"\0" in data[:65536]:
        raise ExtractionError(f"{path.name}: binary data, not a text OBJ file")
    vertex_count = len(re.findall(rb"^v[ \t]", data, re.MULTILINE))
    statements = _obj_statements(data)
    geometry = _trimesh_geometry(path, vertex_count=vertex_count)
    if geometry["faces"] == 0 and vertex_count == 0:
        raise ExtractionError(f"{path.name}: no vertices or faces (empty or not an OBJ file)")

    dependencies: list[Dependency] = []
    materials: list[str] = []
    textures: list[str] = []
    for library in statements["mtllib"]:
        dep = local_dependency("other", library, path.parent)
        dependencies.append(dep)
        if dep.exists and dep.resolved_path:
            names, maps = _parse_mtl(Path(dep.resolved_path))
            materials += [n for n in names if n not in materials]
            for raw in maps:
                texture = local_dependency("texture", raw, Path(dep.resolved_path).parent)
                if all(d.raw_path != raw or d.kind != "texture" for d in dependencies):
                    dependencies.append(texture)
                    textures.append(raw)
    if not materials:  # library missing: the names the OBJ itself uses are all we know
        materials = statements["usemtl"]
    object_names = statements["o"] or statements["g"] or list(geometry["names"])
    metadata: dict[str, Any] = {
        "objects": cap(object_names),
        "groups": cap(statements["g"]),
        "materials": cap(materials),
        "material_libraries": cap(statements["mtllib"]),
        "textures": cap(textures),
        "units": None,  # OBJ does not record units
    }
    row = model_row(
        "obj",
        mesh_count=len(object_names) or len(geometry["names"]),
        face_count=geometry["faces"],
        vertex_count=vertex_count,
        material_count=len(materials),
        node_count=len(object_names) or len(geometry["names"]),
        bounds=geometry["bounds"],
    )
    text = [model_summary("OBJ model", row)]
    text += name_lines(objects=object_names, materials=materials)
    if textures:
        text.append(name_line("textures", [os.path.basename(t) for t in textures]))
    return Extraction(metadata={"obj": metadata}, text=text, type_row=row, dependencies=dependencies)


# --- glTF / OBJ internals --------------------------------------------------------------------------


def _read_glb_json(path: Path) -> dict[str, Any]:
    """The JSON chunk of a .glb, after checking the declared length against the file (truncation)."""
    try:
        with path.open("rb") as handle:
            header = handle.read(20)
            if len(header) < 20 or header[:4] != b"glTF":
                raise ExtractionError(f"{path.name}: not a binary glTF file (bad magic)")
            version, length, json_length, chunk_type = struct.unpack("<III4s", header[4:])
            if version != 2:
                raise ExtractionError(f"{path.name}: unsupported glTF version {version}")
            size = path.stat().st_size
            if length > size:
                raise ExtractionError(f"{path.name}: truncated GLB ({size} of {length} bytes)")
            if chunk_type != b"JSON" or json_length > length - 20:
                raise ExtractionError(f"{path.name}: corrupt GLB chunk table")
            raw = handle.read(json_length)
    except OSError as exc:
        raise ExtractionError(f"{path.name}: cannot read: {exc}") from exc
    return _parse_gltf_json(path, raw)


def _read_gltf_json(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ExtractionError(f"{path.name}: cannot read: {exc}") from exc
    return _parse_gltf_json(path, raw)


def _parse_gltf_json(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ExtractionError(f"{path.name}: invalid glTF JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("asset"), dict):
        raise ExtractionError(f"{path.name}: not a glTF document (no 'asset' object)")
    return doc


def _items(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """A top-level glTF array, keeping only well-formed (object) entries."""
    value = doc.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    """The strings of a JSON list (anything else: empty)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _names(items: list[dict[str, Any]], kind: str) -> list[str]:
    """Entry names, with glTF's unnamed entries shown by index ("mesh_3")."""
    return [str(item.get("name") or f"{kind}_{index}") for index, item in enumerate(items)]


def _gltf_declared_counts(doc: dict[str, Any]) -> dict[str, int | None]:
    """Triangles and vertices as the accessors declare them (no buffer needed); None where malformed."""
    accessors = doc.get("accessors") if isinstance(doc.get("accessors"), list) else []
    faces = vertices = 0
    try:
        for mesh in _items(doc, "meshes"):
            for primitive in mesh.get("primitives", []):
                positions = int(accessors[primitive["attributes"]["POSITION"]]["count"])
                indexed = "indices" in primitive
                corners = int(accessors[primitive["indices"]]["count"]) if indexed else positions
                mode = primitive.get("mode", 4)
                faces += corners // 3 if mode == 4 else max(corners - 2, 0) if mode in (5, 6) else 0
                vertices += positions
    except (KeyError, IndexError, TypeError, ValueError):
        return {"faces": None, "vertices": None}
    return {"faces": faces, "vertices": vertices}


def _gltf_animations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each animation's name, channel count and duration (the largest keyframe time, in seconds).

    glTF stores times in seconds and no frame rate, so frames cannot be derived.
    """
    accessors = doc.get("accessors") if isinstance(doc.get("accessors"), list) else []
    result = []
    for index, animation in enumerate(_items(doc, "animations")):
        duration = None
        for sampler in animation.get("samplers", []) or []:
            try:
                top = float(accessors[sampler["input"]]["max"][0])
            except (KeyError, IndexError, TypeError, ValueError):
                continue
            if math.isfinite(top):
                duration = top if duration is None else max(duration, top)
        result.append(
            {
                "name": str(animation.get("name") or f"animation_{index}"),
                "channels": len(animation.get("channels", []) or []),
                "duration_s": round(duration, 4) if duration is not None else None,
            }
        )
    return result


def _trimesh_geometry(path: Path, vertex_count: int | None) -> dict[str, Any]:
    """Triangle count, vertex count, world bounds and geometry names, loaded by trimesh without materials.

    ``vertex_count`` overrides trimesh's count (OBJ: trimesh splits vertices at UV seams, the file does not).
    """
    import numpy as np
    import trimesh
    from trimesh.resolvers import FilePathResolver

    try:
        scene = trimesh.load(
            str(path),
            force="scene",
            resolver=FilePathResolver(str(path)),  # confined to the model's folder; no network
            allow_remote=False,
            skip_materials=True,
            process=False,
        )
        faces = sum(len(getattr(g, "faces", ())) for g in scene.geometry.values())
        vertices = sum(len(getattr(g, "vertices", ())) for g in scene.geometry.values())
        bounds = None if scene.is_empty else scene.bounds
        instances = len(scene.graph.nodes_geometry)
    except Exception as exc:  # trimesh raises many types (ValueError, KeyError, IndexError, JSON errors)
        raise ExtractionError(f"{path.name}: cannot load geometry: {type(exc).__name__}: {exc}") from exc
    if bounds is not None and not np.all(np.isfinite(bounds)):
        bounds = None
    return {
        "faces": int(faces),
        "vertices": int(vertex_count if vertex_count is not None else vertices),
        "bounds": None if bounds is None else [[round(float(v), 6) for v in corner] for corner in bounds],
        "instances": int(instances),
        "names": list(scene.geometry.keys()),
    }


def _obj_statements(data: bytes) -> dict[str, list[str]]:
    """The mtllib, usemtl, o and g statements of an OBJ, de-duplicated in file order."""
    found: dict[str, list[str]] = {"mtllib": [], "usemtl": [], "o": [], "g": []}
    for match in re.finditer(rb"^(mtllib|usemtl|o|g)[ \t]+([^\r\n]+)", data, re.MULTILINE):
        key, value = match.group(1).decode(), match.group(2).decode("utf-8", "replace").strip()
        if value and value not in found[key]:
            found[key].append(value)
    return found


def _parse_mtl(path: Path) -> tuple[list[str], list[str]]:
    """Material names and texture-map file names of a .mtl file (map options such as ``-bm 1`` skipped)."""
    names: list[str] = []
    maps: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return names, maps
    for line in lines:
        parts = line.strip().split()
        if not parts or parts[0].startswith("#"):
            continue
        key = parts[0].lower()
        if key == "newmtl" and len(parts) > 1:
            names.append(" ".join(parts[1:]))
        elif key.startswith("map_") or key in _MTL_MAP_KEYS:
            filename = _mtl_map_filename(parts[1:])
            if filename and filename not in maps:
                maps.append(filename)
    return names, maps


def _mtl_map_filename(tokens: list[str]) -> str | None:
    """Skip ``-option value...`` pairs of a map statement; the rest is the file name (may contain spaces)."""
    index = 0
    while index < len(tokens) and tokens[index].startswith("-") and tokens[index].lower() in _MTL_OPTION_ARGS:
        limit = _MTL_OPTION_ARGS[tokens[index].lower()]
        index += 1
        taken = 0
        while taken < limit and index < len(tokens) - 1:
            if limit == 3 and taken and not _is_number(tokens[index]):
                break
            index += 1
            taken += 1
    return " ".join(tokens[index:]) or None


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
