"""Pixar USD layers (.usd, .usda, .usdc, .usdz): prims, stage metadata, composition dependencies.

``usd-core`` is an optional extra (``cgchat[usd]``) because its wheel is large; without it a .usda text
header still yields the stage metadata and sublayers, and the result says USD support is missing.

With ``pxr`` the stage is composed with payloads left unloaded (what USD tools do to open big scenes
cheaply), so prims and meshes brought in by references and sublayers are counted, heavy payload
geometry is not. Dependencies are what the root layer itself authors (sublayers, references, payloads,
asset-valued attributes such as texture files), each resolved against the layer's folder, or inside
the package for .usdz. Nothing is fetched: only the default file-system resolver is used.
"""

from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path
from typing import Any

from .base import Dependency, Extraction, ExtractionError
from .common import (
    LIST_CAP,
    cap,
    guarded,
    local_dependency,
    model_row,
    model_summary,
    name_line,
    name_lines,
    read_head,
    require_nonempty,
)

_MAX_PRIMS = 200_000  # traversal stops counting here; huge stages are marked truncated
_IMAGE_EXTENSIONS = frozenset(
    ".png .jpg .jpeg .exr .tif .tiff .tx .tex .hdr .ktx .ktx2 .bmp .tga .dds .webp .rat .avif".split()
)
_CACHE_EXTENSIONS = frozenset(".abc .vdb .nvdb .bgeo .sc .ptc".split())  # .bgeo.sc ends in .sc
_SOUND_EXTENSIONS = frozenset(".wav .mp3 .ogg .flac .aif .aiff".split())
_HEADER_BYTES = 65536
_METADATA_VALUE = re.compile(r'^\s*(\w+)\s*=\s*("(?:[^"\\\n]|\\.)*"|[-+0-9.eE]+)', re.MULTILINE)


@guarded("USD")
def extract_usd(path: Path) -> Extraction:
    """Read a USD file; falls back to a header-only reading when ``usd-core`` is not installed."""
    require_nonempty(path)
    try:
        from pxr import Usd  # noqa: F401  (optional dependency, imported only when a USD file is read)
    except ImportError:
        return _extract_without_pxr(path)
    return _extract_with_pxr(path)


# --- with usd-core ---------------------------------------------------------------------------------


def _extract_with_pxr(path: Path) -> Extraction:
    from pxr import Sdf, Usd

    try:
        layer = Sdf.Layer.Find(str(path))
        if layer is not None:
            layer.Reload()  # a layer cached by an earlier read may be stale
        else:
            layer = Sdf.Layer.FindOrOpen(str(path))
        if layer is None:
            raise ExtractionError(f"{path.name}: USD could not open the layer")
        stage = Usd.Stage.Open(layer, Usd.Stage.LoadNone)
    except ExtractionError:
        raise
    except Exception as exc:  # pxr.Tf.ErrorException (a RuntimeError) with the parser's message
        raise ExtractionError(f"{path.name}: invalid USD: {_first_line(exc)}") from exc
    try:
        return _describe_stage(path, layer, stage)
    except ExtractionError:
        raise
    except Exception as exc:
        raise ExtractionError(f"{path.name}: cannot read USD contents: {_first_line(exc)}") from exc


def _describe_stage(path: Path, layer: Any, stage: Any) -> Extraction:
    from pxr import Usd, UsdGeom, UsdShade

    prims: list[dict[str, str]] = []
    type_counts: dict[str, int] = {}
    objects: list[str] = []
    meshes: list[str] = []
    materials: list[str] = []
    faces = vertices = polygons = count = 0
    earliest = Usd.TimeCode.EarliestTime()
    truncated = False
    # Unloaded payload prims are listed (their contents are not composed); abstract classes are not.
    predicate = Usd.PrimIsActive & Usd.PrimIsDefined & ~Usd.PrimIsAbstract
    for prim in stage.Traverse(predicate):
        if count >= _MAX_PRIMS:
            truncated = True
            break
        count += 1
        type_name = str(prim.GetTypeName())
        type_counts[type_name or "(typeless)"] = type_counts.get(type_name or "(typeless)", 0) + 1
        if len(prims) < LIST_CAP:
            prims.append({"path": str(prim.GetPath()), "type": type_name})
        if prim.IsA(UsdGeom.Xform) and not any(c.IsA(UsdGeom.Xform) for c in prim.GetChildren()):
            objects.append(prim.GetName())  # leaf transforms: the placed things ("Rock_01", "Crate_01")
        if prim.IsA(UsdGeom.Mesh):
            meshes.append(str(prim.GetPath()))
            mesh = UsdGeom.Mesh(prim)
            counts = mesh.GetFaceVertexCountsAttr().Get(earliest) or []
            points = mesh.GetPointsAttr().Get(earliest) or []
            polygons += len(counts)
            faces += sum(max(int(c) - 2, 0) for c in counts)
            vertices += len(points)
        elif prim.IsA(UsdShade.Material):
            materials.append(prim.GetName())

    fps, frame_start, frame_end = _time_settings(stage)
    default_prim = stage.GetDefaultPrim()
    row = model_row(
        "usd",
        mesh_count=len(meshes),
        face_count=faces,
        vertex_count=vertices,
        material_count=len(materials),
        node_count=count,
        bounds=_bounds(stage),
        fps=fps,
        frame_start=frame_start,
        frame_end=frame_end,
    )
    dependencies = _layer_dependencies(path, layer)
    metadata: dict[str, Any] = {
        "available": True,
        "usd_version": ".".join(str(v) for v in Usd.GetVersion()),
        "layer_format": layer.GetFileFormat().formatId,
        "default_prim": str(default_prim.GetPath()) if default_prim else None,
        "prim_count": count,
        "prims_truncated": truncated,
        "prims": prims,
        "prim_types": dict(sorted(type_counts.items(), key=lambda kv: -kv[1])[:50]),
        "objects": cap(objects),
        "meshes": cap(meshes),
        "materials": cap(materials),
        "polygon_count": polygons,
        "start_time_code": stage.GetStartTimeCode() if stage.HasAuthoredTimeCodeRange() else None,
        "end_time_code": stage.GetEndTimeCode() if stage.HasAuthoredTimeCodeRange() else None,
        "time_codes_per_second": _authored(stage, "timeCodesPerSecond"),
        "frames_per_second": _authored(stage, "framesPerSecond"),
        "up_axis": str(UsdGeom.GetStageUpAxis(stage)) if stage.HasAuthoredMetadata("upAxis") else None,
        "meters_per_unit": _authored(stage, "metersPerUnit"),
        "doc": layer.documentation or None,
        "payloads_loaded": False,
    }
    text = [model_summary(f"USD stage, {count:,} prims", row)]
    if metadata["default_prim"]:
        text.append(f"default prim {default_prim.GetName()}")
    mesh_names = [m.rsplit("/", 1)[-1] for m in meshes]
    text += name_lines(objects=objects, meshes=mesh_names, materials=materials)
    for kind in ("sublayer", "reference", "payload"):
        files = [Path(d.raw_path).name for d in dependencies if d.kind == kind]
        if files:
            text.append(name_line(kind + "s", files))
    if metadata["up_axis"]:
        text.append(f"up axis {metadata['up_axis']}")
    return Extraction(metadata={"usd": metadata}, text=text, type_row=row, dependencies=dependencies)


def _time_settings(stage: Any) -> tuple[float | None, int | None, int | None]:
    """Frame rate (framesPerSecond, else timeCodesPerSecond, when authored) and the authored time range."""
    fps = _authored(stage, "framesPerSecond") or _authored(stage, "timeCodesPerSecond")
    if not stage.HasAuthoredTimeCodeRange():
        return fps, None, None
    start, end = stage.GetStartTimeCode(), stage.GetEndTimeCode()
    if not (math.isfinite(start) and math.isfinite(end)):
        return fps, None, None
    return fps, round(start), round(end)


def _authored(stage: Any, key: str) -> float | None:
    """A numeric stage-metadata value only when the file authors it (USD otherwise reports fallbacks)."""
    if not stage.HasAuthoredMetadata(key):
        return None
    value = stage.GetMetadata(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _bounds(stage: Any) -> list[list[float]] | None:
    """World-space axis-aligned bounds of renderable geometry at the earliest time, or None if empty."""
    from pxr import Usd, UsdGeom

    purposes = [UsdGeom.Tokens.default_, UsdGeom.Tokens.render, UsdGeom.Tokens.proxy]
    cache = UsdGeom.BBoxCache(Usd.TimeCode.EarliestTime(), purposes, useExtentsHint=True)
    box = cache.ComputeWorldBound(stage.GetPseudoRoot()).ComputeAlignedRange()
    if box.IsEmpty():
        return None
    low, high = [list(box.GetMin()), list(box.GetMax())]
    if not all(math.isfinite(v) for v in low + high):
        return None
    return [[round(float(v), 6) for v in low], [round(float(v), 6) for v in high]]


def _layer_dependencies(path: Path, layer: Any) -> list[Dependency]:
    """Sublayers, references, payloads and asset-valued attributes authored in the root layer."""
    from pxr import Sdf

    found: list[tuple[str, str]] = [("sublayer", p) for p in layer.subLayerPaths]

    def visit(spec_path: Any) -> None:
        if spec_path.IsPrimPath() or spec_path.IsPrimVariantSelectionPath():
            spec = layer.GetPrimAtPath(spec_path)
            if spec is None:
                return
            found.extend(
                ("reference", r.assetPath) for r in _list_op_items(spec.referenceList) if r.assetPath
            )
            found.extend(("payload", p.assetPath) for p in _list_op_items(spec.payloadList) if p.assetPath)
        elif spec_path.IsPropertyPath():
            spec = layer.GetAttributeAtPath(spec_path)
            if spec is None or spec.typeName not in (Sdf.ValueTypeNames.Asset, Sdf.ValueTypeNames.AssetArray):
                return
            values = [spec.default] + [
                layer.QueryTimeSample(spec_path, t) for t in layer.ListTimeSamplesForPath(spec_path)
            ]
            for value in values:
                for asset in _asset_paths(value):
                    found.append((_asset_kind(asset), asset))

    layer.Traverse(Sdf.Path.absoluteRootPath, visit)
    package = path.suffix.lower() == ".usdz"
    names = _zip_names(path) if package else set()
    result: list[Dependency] = []
    seen: set[tuple[str, str]] = set()
    for kind, raw in found:
        if (kind, raw) in seen:
            continue
        seen.add((kind, raw))
        if package and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:|^/", raw):
            inner = str(Path(raw).as_posix()).removeprefix("./")
            result.append(
                Dependency(
                    kind=kind,
                    raw_path=raw,
                    resolved_path=f"{path.absolute()}[{inner}]",
                    exists=inner in names,
                )
            )
        else:
            result.append(local_dependency(kind, raw, path.parent))
    return result


def _list_op_items(list_op: Any) -> list[Any]:
    """Every item a list op adds (explicit, prepended, appended, added), deleted ones left out."""
    items = list(list_op.explicitItems) + list(list_op.prependedItems) + list(list_op.appendedItems)
    return items + list(list_op.addedItems)


def _asset_paths(value: Any) -> list[str]:
    """Authored path strings of an SdfAssetPath or an array of them."""
    if value is None:
        return []
    if hasattr(value, "path"):
        return [value.path] if value.path else []
    try:
        return [v.path for v in value if getattr(v, "path", "")]
    except TypeError:
        return []


def _asset_kind(asset: str) -> str:
    """The dependency kind an asset attribute's file extension suggests."""
    lower = asset.lower().split("[", 1)[0]
    suffix = Path(lower).suffix
    if suffix in _IMAGE_EXTENSIONS:
        return "texture"
    if suffix in _CACHE_EXTENSIONS:
        return "cache"
    if suffix in _SOUND_EXTENSIONS:
        return "sound"
    return "other"


def _zip_names(path: Path) -> set[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return set()


def _first_line(exc: BaseException) -> str:
    """pxr errors carry a multi-line C++ trace; the quoted message at the end of a line is the useful part."""
    text = str(exc)
    match = re.search(r" : '([^\n]*)", text)
    if match:
        return match.group(1).rstrip("'")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# --- without usd-core ------------------------------------------------------------------------------


def _extract_without_pxr(path: Path) -> Extraction:
    """Recognise the file and read a .usda layer's metadata block by text; say that usd-core is missing."""
    head = read_head(path, _HEADER_BYTES)
    facts: dict[str, Any] = {}
    sublayers: list[str] = []
    if head.startswith(b"#usda"):
        layer_format = "usda"
        facts, sublayers = _usda_header(head.decode("utf-8", "replace"))
    elif head.startswith(b"PXR-USDC"):
        layer_format = "usdc"
    elif head.startswith(b"PK\x03\x04") and zipfile.is_zipfile(path):
        layer_format = "usdz"
        facts["package_files"] = cap(sorted(_zip_names(path)))
    else:
        raise ExtractionError(f"{path.name}: not a USD file (no usda/usdc/usdz signature)")

    fps = facts.get("framesPerSecond") or facts.get("timeCodesPerSecond")
    start, end = facts.get("startTimeCode"), facts.get("endTimeCode")
    row = model_row(
        "usd",
        fps=float(fps) if isinstance(fps, int | float) else None,
        frame_start=round(start) if isinstance(start, int | float) else None,
        frame_end=round(end) if isinstance(end, int | float) else None,
    )
    metadata: dict[str, Any] = {
        "available": False,
        "reason": "install cgchat[usd]",
        "layer_format": layer_format,
        "default_prim": facts.get("defaultPrim"),
        "start_time_code": start,
        "end_time_code": end,
        "time_codes_per_second": facts.get("timeCodesPerSecond"),
        "frames_per_second": facts.get("framesPerSecond"),
        "up_axis": facts.get("upAxis"),
        "meters_per_unit": facts.get("metersPerUnit"),
        "doc": facts.get("doc"),
    }
    if "package_files" in facts:
        metadata["package_files"] = facts["package_files"]
    dependencies = [local_dependency("sublayer", s, path.parent) for s in sublayers]
    text = [model_summary(f"USD layer ({layer_format})", row)]
    if metadata["default_prim"]:
        text.append(f"default prim {metadata['default_prim']}")
    if sublayers:
        text.append(name_line("sublayers", [Path(s).name for s in sublayers]))
    return Extraction(metadata={"usd": metadata}, text=text, type_row=row, dependencies=dependencies)


def _usda_header(text: str) -> tuple[dict[str, Any], list[str]]:
    """Simple values (strings, numbers) and subLayers of the layer metadata block ``( ... )`` after #usda."""
    body = text.split("\n", 1)[1] if "\n" in text else ""
    stripped = body.lstrip()
    if not stripped.startswith("("):
        return {}, []
    block = _balanced_block(stripped)
    facts: dict[str, Any] = {}
    for key, raw in _METADATA_VALUE.findall(block):
        if raw.startswith('"'):
            facts[key] = raw[1:-1].replace('\\"', '"')
        else:
            try:
                number = float(raw)
            except ValueError:
                continue
            facts[key] = int(number) if number.is_integer() and "." not in raw else number
    doc = re.search(r'^\s*doc\s*=\s*"""(.*?)"""', block, re.MULTILINE | re.DOTALL)
    if doc:
        facts["doc"] = doc.group(1).strip()
    sublayer_block = re.search(r"\bsubLayers\s*=\s*\[(.*?)\]", block, re.DOTALL)
    sublayers = re.findall(r"@([^@]+)@", sublayer_block.group(1)) if sublayer_block else []
    return facts, sublayers


def _balanced_block(text: str) -> str:
    """The text inside the first parenthesised block, honouring quoted strings."""
    depth, quote, index = 0, "", 0
    while index < len(text):
        char = text[index]
        if quote:
            if text.startswith(quote, index):
                index += len(quote)
                quote = ""
                continue
            if char == "\\":
                index += 1
        elif text.startswith('"""', index):
            quote = '"""'
            index += 3
            continue
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return text[1:index]
        index += 1
    return text[1:]
