"""3D model extractors: glTF/GLB/OBJ (mesh.py), FBX (fbx.py), USD (usd.py).

The committed forest samples (exported by Blender 3.4) are checked for real values; models built here
with trimesh / usd-core / plain text cover the details, and every broken input is made in tmp_path.
No Blender is needed.
"""

from __future__ import annotations

import builtins
import json
import struct
from pathlib import Path
from typing import Any

import pytest
import trimesh

from cgchat.ingest.extractors.base import Extraction, ExtractionError
from cgchat.ingest.extractors.fbx import extract_fbx
from cgchat.ingest.extractors.mesh import extract_mesh
from cgchat.ingest.extractors.usd import extract_usd

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
OAK_GLB = SAMPLES / "forest/assets/env/oak/tree_oak_v001.glb"
ROCK_OBJ = SAMPLES / "forest/assets/env/rocks/rock_granite_v002.obj"
CRATE_FBX = SAMPLES / "forest/assets/props/crate_v001.fbx"
LAYOUT_USDA = SAMPLES / "forest/assets/layout/forest_layout_v001.usda"
MODEL_COLUMNS = {
    "format",
    "mesh_count",
    "face_count",
    "vertex_count",
    "material_count",
    "node_count",
    "bounds",
    "fps",
    "frame_start",
    "frame_end",
}


def sample(path: Path) -> Path:
    assert path.is_file(), f"sample missing: {path.relative_to(SAMPLES.parent)}"
    return path


def checked(extraction: Extraction) -> Extraction:
    """Every extraction: all models_3d columns, storable metadata, absolute resolved dependency paths."""
    assert set(extraction.type_row) == MODEL_COLUMNS
    json.dumps(extraction.metadata, allow_nan=False)
    json.dumps(extraction.type_row, allow_nan=False)
    for dep in extraction.dependencies:
        assert dep.resolved_path is None or dep.resolved_path.startswith("/"), dep
    return extraction


def deps(extraction: Extraction) -> dict[str, tuple[str, bool]]:
    """raw path -> (kind, exists)."""
    return {d.raw_path: (d.kind, d.exists) for d in extraction.dependencies}


# --- glTF / GLB --------------------------------------------------------------------------------------


def _oak_scene() -> trimesh.Scene:
    scene = trimesh.Scene()
    trunk = trimesh.creation.box(extents=(1, 2, 3))
    trunk.visual = trimesh.visual.TextureVisuals(material=trimesh.visual.material.PBRMaterial(name="Bark"))
    leaves = trimesh.creation.icosphere(subdivisions=1)
    leaves.visual = trimesh.visual.TextureVisuals(material=trimesh.visual.material.PBRMaterial(name="Leaves"))
    scene.add_geometry(trunk, node_name="Oak_Trunk", geom_name="TrunkMesh")
    scene.add_geometry(
        leaves,
        node_name="Oak_Leaves",
        geom_name="LeavesMesh",
        transform=trimesh.transformations.translation_matrix((0, 0, 5)),
    )
    return scene


BOX_AND_SPHERE = {
    "mesh_count": 2,
    "face_count": 12 + 80,
    "vertex_count": 8 + 42,
    "material_count": 2,
    "node_count": 2,
    "bounds": [[-1.0, -1.0, -1.5], [1.0, 1.0, 6.0]],
}


@pytest.fixture()
def gltf_folder(tmp_path: Path) -> Path:
    """A .gltf with four external buffers, two texture references (one missing) and one animation."""
    files = _oak_scene().export(file_type="gltf")
    doc = json.loads(files.pop("model.gltf"))
    doc["images"] = [
        {"uri": "textures/bark%20albedo.png"},
        {"uri": "textures/leaves.png"},
        {"uri": "data:image/png;base64,AAAA", "name": "inline"},
    ]
    doc["animations"] = [
        {
            "name": "Sway",
            "channels": [{"sampler": 0, "target": {"node": 1, "path": "translation"}}],
            "samplers": [{"input": 0, "output": 1}],
        }
    ]
    (tmp_path / "oak.gltf").write_text(json.dumps(doc))
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "textures").mkdir()
    (tmp_path / "textures/bark albedo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return tmp_path


def test_gltf_written_here(gltf_folder: Path) -> None:
    extraction = checked(extract_mesh(gltf_folder / "oak.gltf"))
    assert extraction.type_row == {
        "format": "gltf",
        **BOX_AND_SPHERE,
        "fps": None,
        "frame_start": None,
        "frame_end": None,
    }
    meta = extraction.metadata["gltf"]
    assert meta["meshes"] == ["TrunkMesh", "LeavesMesh"]
    assert meta["materials"] == ["Bark", "Leaves"]
    assert meta["objects"] == ["Oak_Trunk", "Oak_Leaves"]
    assert meta["generator"].startswith("https://github.com/mikedh/trimesh")
    assert meta["units"] == "meters"
    assert meta["animations"] == [{"name": "Sway", "channels": 1, "duration_s": 7.0}]  # accessor 0's max
    assert meta["textures"] == ["textures/bark albedo.png", "textures/leaves.png", "embedded:inline"]
    found = deps(extraction)
    assert found["textures/bark albedo.png"] == ("texture", True)
    assert found["textures/leaves.png"] == ("texture", False)
    assert [found[f"gltf_buffer_{i}.bin"] for i in range(4)] == [("other", True)] * 4
    bark = next(d for d in extraction.dependencies if d.raw_path == "textures/bark albedo.png")
    assert bark.resolved_path == str(gltf_folder / "textures/bark albedo.png")
    assert extraction.text[:4] == [
        "glTF model, 2 meshes, 92 faces",
        "objects: Oak_Trunk, Oak_Leaves",
        "meshes: TrunkMesh, LeavesMesh",
        "materials: Bark, Leaves",
    ]


def test_gltf_with_missing_or_remote_buffer_keeps_names(gltf_folder: Path) -> None:
    """Bounds are unknown without the buffers, but the declared counts, the names and the missing file
    are still recorded; a URL is never fetched."""
    doc = json.loads((gltf_folder / "oak.gltf").read_text())
    doc["buffers"][2]["uri"] = "https://example.invalid/leaves.bin"
    (gltf_folder / "gltf_buffer_0.bin").unlink()
    (gltf_folder / "oak.gltf").write_text(json.dumps(doc))
    extraction = checked(extract_mesh(gltf_folder / "oak.gltf"))
    assert extraction.type_row == {
        "format": "gltf",
        **BOX_AND_SPHERE,
        "bounds": None,
        "fps": None,
        "frame_start": None,
        "frame_end": None,
    }
    assert "geometry_note" in extraction.metadata["gltf"]
    found = {d.raw_path: d for d in extraction.dependencies}
    assert found["gltf_buffer_0.bin"].exists is False
    remote = found["https://example.invalid/leaves.bin"]
    assert (remote.resolved_path, remote.exists) == (None, False)


def test_glb_written_here(tmp_path: Path) -> None:
    path = tmp_path / "oak.glb"
    path.write_bytes(_oak_scene().export(file_type="glb"))
    extraction = checked(extract_mesh(path))
    assert extraction.type_row == {
        "format": "glb",
        **BOX_AND_SPHERE,
        "fps": None,
        "frame_start": None,
        "frame_end": None,
    }
    assert extraction.dependencies == []
    assert extraction.text[0] == "glTF binary model, 2 meshes, 92 faces"


def _glb_with_json(glb: bytes, change: Any) -> bytes:
    """Rewrite a GLB's JSON chunk (padded to 4 bytes as the format requires), keeping its BIN chunk."""
    json_length = struct.unpack_from("<I", glb, 12)[0]
    doc = json.loads(glb[20 : 20 + json_length])
    change(doc)
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    rest = glb[20 + json_length :]
    body = struct.pack("<I4s", len(text), b"JSON") + text + rest
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body


def test_glb_with_draco_keeps_names(tmp_path: Path) -> None:
    """Geometry trimesh cannot decode (Draco) is not a broken file: names stay, counts are unknown."""

    def draco(doc: dict[str, Any]) -> None:
        doc["extensionsUsed"] = doc["extensionsRequired"] = ["KHR_draco_mesh_compression"]
        for accessor in doc["accessors"]:
            accessor.pop("bufferView", None)  # Draco accessors point into the compressed stream instead

    path = tmp_path / "oak_draco.glb"
    path.write_bytes(_glb_with_json(_oak_scene().export(file_type="glb"), draco))
    extraction = checked(extract_mesh(path))
    assert extraction.type_row == {
        "format": "glb",
        **BOX_AND_SPHERE,
        "bounds": None,
        "fps": None,
        "frame_start": None,
        "frame_end": None,
    }  # counts from the accessors
    assert extraction.metadata["gltf"]["extensions_required"] == ["KHR_draco_mesh_compression"]
    assert extraction.metadata["gltf"]["objects"] == ["Oak_Trunk", "Oak_Leaves"]
    assert "KHR_draco_mesh_compression" in extraction.metadata["gltf"]["geometry_note"]


def test_oak_glb_sample() -> None:
    """Counts cross-checked against the file's own accessors (indices/3, POSITION counts)."""
    extraction = checked(extract_mesh(sample(OAK_GLB)))
    row, meta = extraction.type_row, extraction.metadata["gltf"]
    assert {k: row[k] for k in ("format", "mesh_count", "face_count", "vertex_count", "material_count")} == {
        "format": "glb",
        "mesh_count": 3,
        "face_count": 1646,
        "vertex_count": 1000,
        "material_count": 3,
    }
    assert row["node_count"] == 3 and row["fps"] is None
    (x0, y0, z0), (x1, y1, z1) = row["bounds"]
    assert (x0, z0, x1, z1) == (-8.0, -8.0, 8.0, 8.0) and y0 < 0 < 6.5 < y1  # 16 m ground, tree up along +Y
    assert meta["objects"] == ["Oak_Leaves", "Oak_Trunk", "Ground"]
    assert meta["materials"] == ["Leaves", "Bark", "Forest_Floor"]
    assert meta["textures"] == ["embedded:bark_albedo"]  # the bark JPEG is packed: no dependency
    assert extraction.dependencies == []
    assert meta["generator"].startswith("Khronos glTF Blender I/O")
    assert extraction.text[:3] == [
        "glTF binary model, 3 meshes, 1,646 faces",
        "objects: Oak_Leaves, Oak_Trunk, Ground",
        "materials: Leaves, Bark, Forest_Floor",
    ]


# --- OBJ -----------------------------------------------------------------------------------------------

ROCK_OBJ_TEXT = """# two objects, a quad and a triangle
mtllib rock.mtl
o Rock_A
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
usemtl Granite
f 1 2 3 4
o Rock_B
v 0 0 1
v 1 0 1
v 0 1 1
usemtl Moss
f 5 6 7
"""
ROCK_MTL_TEXT = """newmtl Granite
Kd 0.5 0.5 0.5
map_Kd -bm 0.5 -s 1 1 1 textures/granite albedo.png
bump -bm 0.2 textures/granite_bump.png
newmtl Moss
map_Kd textures/moss.png
"""


@pytest.fixture()
def obj_folder(tmp_path: Path) -> Path:
    (tmp_path / "rock.obj").write_text(ROCK_OBJ_TEXT)
    (tmp_path / "rock.mtl").write_text(ROCK_MTL_TEXT)
    (tmp_path / "textures").mkdir()
    for name in ("granite albedo.png", "granite_bump.png"):
        (tmp_path / "textures" / name).write_bytes(b"\x89PNG\r\n\x1a\n")
    return tmp_path


def test_obj_with_mtl_and_maps(obj_folder: Path) -> None:
    extraction = checked(extract_mesh(obj_folder / "rock.obj"))
    assert extraction.type_row == {
        "format": "obj",
        "mesh_count": 2,
        "face_count": 3,
        "vertex_count": 7,
        "material_count": 2,
        "node_count": 2,
        "bounds": [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]],
        "fps": None,
        "frame_start": None,
        "frame_end": None,
    }
    assert deps(extraction) == {
        "rock.mtl": ("other", True),
        "textures/granite albedo.png": ("texture", True),  # map options skipped, spaces kept
        "textures/granite_bump.png": ("texture", True),
        "textures/moss.png": ("texture", False),
    }
    meta = extraction.metadata["obj"]
    assert meta["objects"] == ["Rock_A", "Rock_B"] and meta["materials"] == ["Granite", "Moss"]
    assert extraction.text == [
        "OBJ model, 2 meshes, 3 faces",
        "objects: Rock_A, Rock_B",
        "materials: Granite, Moss",
        "textures: granite albedo.png, granite_bump.png, moss.png",
    ]


def test_obj_with_missing_mtl_uses_usemtl_names(obj_folder: Path) -> None:
    (obj_folder / "rock.mtl").unlink()
    extraction = checked(extract_mesh(obj_folder / "rock.obj"))
    assert deps(extraction) == {"rock.mtl": ("other", False)}
    assert extraction.metadata["obj"]["materials"] == ["Granite", "Moss"]
    assert extraction.type_row["face_count"] == 3


def test_rock_obj_sample() -> None:
    """A displaced icosphere: 642 `v` lines, 1280 triangles."""
    extraction = checked(extract_mesh(sample(ROCK_OBJ)))
    row = extraction.type_row
    assert {k: row[k] for k in ("format", "mesh_count", "face_count", "vertex_count", "material_count")} == {
        "format": "obj",
        "mesh_count": 1,
        "face_count": 1280,
        "vertex_count": 642,
        "material_count": 1,
    }
    low, high = row["bounds"]
    assert all(a < 0 < b for a, b in zip(low, high, strict=True))
    assert [(d.kind, d.raw_path, d.resolved_path, d.exists) for d in extraction.dependencies] == [
        ("other", "rock_granite_v002.mtl", str(ROCK_OBJ.with_suffix(".mtl")), True)
    ]
    assert extraction.metadata["obj"]["objects"] == ["Rock_Granite"]
    assert extraction.metadata["obj"]["materials"] == ["Granite"]
    assert extraction.text == [
        "OBJ model, 1 mesh, 1,280 faces",
        "objects: Rock_Granite",
        "materials: Granite",
    ]


# --- FBX -----------------------------------------------------------------------------------------------


def test_crate_fbx_sample() -> None:
    """Values cross-checked by importing the file into Blender: 30 polygons, 32 vertices, 1-48 @ 24 fps."""
    extraction = checked(extract_fbx(sample(CRATE_FBX)))
    row, meta = extraction.type_row, extraction.metadata["fbx"]
    assert row == {
        "format": "fbx",
        "mesh_count": 1,
        "face_count": 60,
        "vertex_count": 32,
        "material_count": 1,
        "node_count": 1,
        "bounds": None,  # pyufbx 0.0.7 hands out unusable vertex positions; see fbx.py
        "fps": 24.0,
        "frame_start": 1,
        "frame_end": 48,
    }
    assert meta["objects"] == ["Crate"] and meta["materials"] == ["Wood"]
    assert meta["polygon_count"] == 30
    assert meta["creator"].startswith("Blender (stable FBX IO) - 3.4")
    assert meta["fbx_version"] == 7400 and meta["ascii"] is False
    assert (meta["up_axis"], meta["meters_per_unit"]) == ("Y", 0.01)
    assert [(s["name"], s["frame_start"], s["frame_end"]) for s in meta["animation_stacks"]] == [
        ("Scene", 1, 48)
    ]
    assert extraction.dependencies == []
    assert extraction.text[:3] == [
        "FBX model, 1 mesh, 60 faces, frames 1-48 at 24 fps",
        "objects: Crate",
        "materials: Wood",
    ]


# --- USD -----------------------------------------------------------------------------------------------


@pytest.fixture()
def usd_folder(tmp_path: Path) -> Path:
    """layout.usda sublayers and references props.usda, has a payload and two missing references."""
    pytest.importorskip("pxr")
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade

    props = Usd.Stage.CreateNew(str(tmp_path / "props.usda"))
    UsdGeom.SetStageUpAxis(props, UsdGeom.Tokens.z)
    props.SetDefaultPrim(UsdGeom.Xform.Define(props, "/Props").GetPrim())
    cube = UsdGeom.Mesh.Define(props, "/Props/Crate")
    cube.CreatePointsAttr(
        [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1)]
    )
    cube.CreateFaceVertexCountsAttr([4] * 6)
    cube.CreateFaceVertexIndicesAttr([0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 5, 4, 1, 2, 6, 5, 2, 3, 7, 6, 3, 0, 4, 7])
    UsdShade.Material.Define(props, "/Props/Looks/Wood")
    texture = UsdShade.Shader.Define(props, "/Props/Looks/Wood/Albedo")
    texture.CreateInput("file", Sdf.ValueTypeNames.Asset).Set("./tex/wood.png")
    rough = UsdShade.Shader.Define(props, "/Props/Looks/Wood/Rough")
    rough.CreateInput("file", Sdf.ValueTypeNames.Asset).Set("./tex/wood_rough.<UDIM>.png")
    props.GetRootLayer().Save()
    (tmp_path / "tex").mkdir()
    (tmp_path / "tex/wood.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "tex/wood_rough.1001.png").write_bytes(b"\x89PNG\r\n\x1a\n")

    heavy = Usd.Stage.CreateNew(str(tmp_path / "heavy.usda"))
    heavy.SetDefaultPrim(UsdGeom.Xform.Define(heavy, "/Heavy").GetPrim())
    UsdGeom.Sphere.Define(heavy, "/Heavy/Ball")
    heavy.GetRootLayer().Save()

    layout = Usd.Stage.CreateNew(str(tmp_path / "layout.usda"))
    layout.SetStartTimeCode(1)
    layout.SetEndTimeCode(48)
    layout.SetTimeCodesPerSecond(24)
    layout.SetFramesPerSecond(24)
    UsdGeom.SetStageUpAxis(layout, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(layout, 0.01)
    layout.GetRootLayer().subLayerPaths.append("./props.usda")
    layout.GetRootLayer().subLayerPaths.append("./missing_sublayer.usda")
    layout.SetDefaultPrim(UsdGeom.Xform.Define(layout, "/World").GetPrim())
    crate = UsdGeom.Xform.Define(layout, "/World/Crate_01")
    crate.GetPrim().GetReferences().AddReference("./props.usda")
    crate.AddTranslateOp().Set(Gf.Vec3d(5, 0, 0))
    UsdGeom.Xform.Define(layout, "/World/Heavy").GetPrim().GetPayloads().AddPayload("./heavy.usda")
    UsdGeom.Xform.Define(layout, "/World/Gone").GetPrim().GetReferences().AddReference("./gone.usda")
    layout.GetRootLayer().Save()
    return tmp_path


def test_usd_layout_written_here(usd_folder: Path) -> None:
    extraction = checked(extract_usd(usd_folder / "layout.usda"))
    assert extraction.type_row == {
        "format": "usd",
        "mesh_count": 2,
        "face_count": 24,
        "vertex_count": 16,
        "material_count": 2,
        "node_count": 15,
        "bounds": [[0.0, 0.0, 0.0], [6.0, 1.0, 1.0]],
        "fps": 24.0,
        "frame_start": 1,
        "frame_end": 48,
    }
    meta = extraction.metadata["usd"]
    assert meta["available"] is True
    assert meta["default_prim"] == "/World"
    assert (meta["up_axis"], meta["meters_per_unit"]) == ("Z", 0.01)
    assert (meta["start_time_code"], meta["end_time_code"], meta["time_codes_per_second"]) == (
        1.0,
        48.0,
        24.0,
    )
    paths = {p["path"]: p["type"] for p in meta["prims"]}
    assert paths["/World/Crate_01/Crate"] == "Mesh"
    assert paths["/World/Heavy"] == "Xform" and "/World/Heavy/Ball" not in paths  # payload left unloaded
    assert [(d.kind, d.raw_path, d.exists) for d in extraction.dependencies] == [
        ("sublayer", "./props.usda", True),
        ("sublayer", "./missing_sublayer.usda", False),
        ("reference", "./props.usda", True),
        ("payload", "./heavy.usda", True),
        ("reference", "./gone.usda", False),
    ]
    assert extraction.dependencies[0].resolved_path == str(usd_folder / "props.usda")
    assert extraction.text[0] == "USD stage, 15 prims, 2 meshes, 24 faces, frames 1-48 at 24 fps"
    assert "references: props.usda, gone.usda" in extraction.text


def test_usd_texture_dependencies_and_udim(usd_folder: Path) -> None:
    extraction = checked(extract_usd(usd_folder / "props.usda"))
    assert deps(extraction) == {
        "./tex/wood.png": ("texture", True),
        "./tex/wood_rough.<UDIM>.png": ("texture", True),
    }
    assert extraction.type_row["fps"] is None and extraction.type_row["frame_start"] is None


def test_usdc_and_usdz(usd_folder: Path) -> None:
    from pxr import Sdf

    Sdf.Layer.FindOrOpen(str(usd_folder / "props.usda")).Export(str(usd_folder / "props.usdc"))
    binary = checked(extract_usd(usd_folder / "props.usdc"))
    assert binary.metadata["usd"]["layer_format"] == "usdc"
    assert binary.type_row["face_count"] == 12
    import zipfile

    with zipfile.ZipFile(usd_folder / "props.usdz", "w") as package:  # usdz: stored, not compressed
        package.write(usd_folder / "props.usda", "props.usda")
        package.write(usd_folder / "tex/wood.png", "tex/wood.png")
    packaged = checked(extract_usd(usd_folder / "props.usdz"))
    wood = next(d for d in packaged.dependencies if d.raw_path == "./tex/wood.png")
    assert wood.exists and wood.resolved_path == f"{usd_folder / 'props.usdz'}[tex/wood.png]"


def _hide_pxr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``from pxr import ...`` fail as it does where the usd extra is not installed."""
    real_import = builtins.__import__

    def no_pxr(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pxr" or name.startswith("pxr."):
            raise ImportError("No module named 'pxr'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pxr)


def test_usd_without_usd_core_reads_the_usda_header(
    usd_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hide_pxr(monkeypatch)
    extraction = checked(extract_usd(usd_folder / "layout.usda"))
    meta = extraction.metadata["usd"]
    assert (meta["available"], meta["reason"]) == (False, "install cgchat[usd]")
    assert meta["default_prim"] == "World" and meta["up_axis"] == "Z"
    assert extraction.type_row["fps"] == 24.0
    assert (extraction.type_row["frame_start"], extraction.type_row["frame_end"]) == (1, 48)
    assert deps(extraction) == {
        "./props.usda": ("sublayer", True),
        "./missing_sublayer.usda": ("sublayer", False),
    }
    with pytest.raises(ExtractionError):
        bad = usd_folder / "bad.usda"
        bad.write_text("hello")
        extract_usd(bad)


def test_forest_layout_usda_sample() -> None:
    """Composed stage: 5 oak proxies, 3 rocks (referenced meshes), a crate and a camera."""
    pytest.importorskip("pxr")
    extraction = checked(extract_usd(sample(LAYOUT_USDA)))
    row, meta = extraction.type_row, extraction.metadata["usd"]
    assert {k: v for k, v in row.items() if k != "bounds"} == {
        "format": "usd",
        "mesh_count": 3,
        "face_count": 3840,
        "vertex_count": 1926,
        "material_count": 0,  # the references target /Props/<asset>, not /Props/Looks
        "node_count": 27,
        "fps": 24.0,
        "frame_start": 1,
        "frame_end": 48,
    }
    assert row["bounds"] is not None
    assert meta["default_prim"] == "/World"
    assert (meta["up_axis"], meta["meters_per_unit"], meta["time_codes_per_second"]) == ("Z", 1.0, 24.0)
    assert meta["objects"] == [f"Oak_0{i}" for i in range(1, 6)] + [
        "Rock_01",
        "Rock_02",
        "Rock_03",
        "Crate_01",
    ]
    assert {"path": "/World/Layout_Cam", "type": "Camera"} in meta["prims"]
    assert meta["doc"].startswith("Forest layout v001")
    assert [(d.kind, d.raw_path, d.resolved_path, d.exists) for d in extraction.dependencies] == [
        ("reference", "./forest_props_v001.usda", str(LAYOUT_USDA.parent / "forest_props_v001.usda"), True)
    ]
    assert extraction.text[0] == "USD stage, 27 prims, 3 meshes, 3,840 faces, frames 1-48 at 24 fps"
    assert "references: forest_props_v001.usda" in extraction.text


def test_forest_props_usda_texture_dependency() -> None:
    pytest.importorskip("pxr")
    props = LAYOUT_USDA.parent / "forest_props_v001.usda"
    extraction = checked(extract_usd(sample(props)))
    bark = SAMPLES / "forest/assets/env/oak/tex/bark_albedo.jpg"
    assert [(d.kind, d.raw_path, d.resolved_path, d.exists) for d in extraction.dependencies] == [
        ("texture", "../env/oak/tex/bark_albedo.jpg", str(bark), True)
    ]
    assert extraction.metadata["usd"]["materials"] == ["Bark", "Leaves", "Granite", "Wood"]


def test_forest_layout_without_usd_core(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_pxr(monkeypatch)
    extraction = checked(extract_usd(sample(LAYOUT_USDA)))
    meta = extraction.metadata["usd"]
    assert meta["available"] is False and meta["default_prim"] == "World"
    assert meta["doc"] == "Forest layout v001 - sq020 set dressing (trees, rocks, crate)"
    assert (
        extraction.type_row["fps"],
        extraction.type_row["frame_start"],
        extraction.type_row["frame_end"],
    ) == (
        24.0,
        1,
        48,
    )


# --- broken input, every format --------------------------------------------------------------------------

GARBAGE = bytes(range(256)) * 8


def _broken_inputs(tmp_path: Path, suffix: str, good: bytes | None) -> list[Path]:
    cases = {"empty": b"", "garbage": GARBAGE}
    if good:
        cases["half"] = good[: len(good) // 2]
        cases["head"] = good[:24]
    paths = []
    for name, data in cases.items():
        path = tmp_path / f"{name}{suffix}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_broken_gltf_glb_obj(tmp_path: Path) -> None:
    glb = _oak_scene().export(file_type="glb")
    for path in _broken_inputs(tmp_path, ".glb", glb) + _broken_inputs(tmp_path, ".obj", None):
        with pytest.raises(ExtractionError):
            extract_mesh(path)
    for text in ("{not json", '{"no": "asset"}', "[]"):
        (tmp_path / "bad.gltf").write_text(text)
        with pytest.raises(ExtractionError):
            extract_mesh(tmp_path / "bad.gltf")
    (tmp_path / "words.obj").write_text("hello world\nnothing here\n")
    with pytest.raises(ExtractionError):
        extract_mesh(tmp_path / "words.obj")


def test_broken_fbx(tmp_path: Path) -> None:
    cases = _broken_inputs(tmp_path, ".fbx", sample(CRATE_FBX).read_bytes())
    (tmp_path / "magic_only.fbx").write_bytes(b"Kaydara FBX Binary  \x00\x1a\x00" + bytes(200))
    cases.append(tmp_path / "magic_only.fbx")
    (tmp_path / "text.fbx").write_text(ROCK_OBJ_TEXT)  # OBJ content that ufbx would happily read as OBJ
    for path in cases + [tmp_path / "text.fbx"]:
        with pytest.raises(ExtractionError):
            extract_fbx(path)


def test_broken_usd(tmp_path: Path) -> None:
    pytest.importorskip("pxr")
    good = (
        b'#usda 1.0\n(\n    defaultPrim = "A"\n)\n\ndef Xform "A"\n{\n    def Mesh "B"\n'
        b"    {\n        int[] faceVertexCounts = [3, 3]\n    }\n}\n"
    )
    paths = _broken_inputs(tmp_path, ".usda", good) + _broken_inputs(
        tmp_path, ".usdc", b"PXR-USDC" + bytes(100)
    )
    for path in paths:
        with pytest.raises(ExtractionError):
            extract_usd(path)


def test_missing_files_raise_extraction_error(tmp_path: Path) -> None:
    for extract, name in (
        (extract_mesh, "x.glb"),
        (extract_mesh, "x.obj"),
        (extract_fbx, "x.fbx"),
        (extract_usd, "x.usda"),
    ):
        with pytest.raises(ExtractionError):
            extract(tmp_path / name)
