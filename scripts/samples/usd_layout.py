"""Author the forest USD layers with usd-core (pxr).

Blender 3.4 as packaged by Debian is built without USD (bpy.app.build_options.usd
is False), so the layout is authored directly with the USD API:

* forest_props_v001.usda - /Props: Rock_Granite (mesh read from the exported
  OBJ), Crate, Oak_Proxy, and UsdPreviewSurface materials.
* forest_layout_v001.usda - /World: trees, rocks and an animated crate that
  *reference* prims in forest_props_v001.usda, plus an animated layout camera.
"""
from __future__ import annotations

import math
from pathlib import Path

from pxr import Gf, Kind, Sdf, Usd, UsdGeom, UsdShade, Vt


def _read_obj(path: Path):
    """Minimal OBJ reader (v / f only), converting Blender's Y-up export back to Z-up."""
    points, counts, indices = [], [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            x, y, z = (float(v) for v in parts[1:4])
            points.append(Gf.Vec3f(x, -z, y))
        elif parts[0] == "f":
            face = [int(p.split("/")[0]) - 1 for p in parts[1:]]
            counts.append(len(face))
            indices.extend(face)
    return points, counts, indices


def _stage_meta(stage: Usd.Stage, doc: str) -> None:
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    stage.GetRootLayer().documentation = doc


def _preview_material(stage, path: str, color, roughness, texture: str | None = None):
    mat = UsdShade.Material.Define(stage, path)
    shader = UsdShade.Shader.Define(stage, path + "/PreviewSurface")
    shader.CreateIdAttr("UsdPreviewSurface")
    shader.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(roughness)
    if texture:
        st = UsdShade.Shader.Define(stage, path + "/stReader")
        st.CreateIdAttr("UsdPrimvarReader_float2")
        st.CreateInput("varname", Sdf.ValueTypeNames.Token).Set("st")
        tex = UsdShade.Shader.Define(stage, path + "/DiffuseTexture")
        tex.CreateIdAttr("UsdUVTexture")
        tex.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(Sdf.AssetPath(texture))
        tex.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(
            st.ConnectableAPI(), "result")
        tex.CreateOutput("rgb", Sdf.ValueTypeNames.Float3)
        shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(
            tex.ConnectableAPI(), "rgb")
    else:
        shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).Set(Gf.Vec3f(*color))
    mat.CreateSurfaceOutput().ConnectToSource(shader.ConnectableAPI(), "surface")
    return mat


def write_props(path: Path, rock_obj: Path) -> None:
    if path.exists():
        path.unlink()
    stage = Usd.Stage.CreateNew(str(path))
    _stage_meta(stage, "Forest props for layout - rock, crate and oak proxy (v001)")
    root = UsdGeom.Xform.Define(stage, "/Props")
    Usd.ModelAPI(root.GetPrim()).SetKind(Kind.Tokens.assembly)
    stage.SetDefaultPrim(root.GetPrim())

    bark = _preview_material(stage, "/Props/Looks/Bark", (0.3, 0.2, 0.1), 0.9,
                             texture="../env/oak/tex/bark_albedo.jpg")
    leaves = _preview_material(stage, "/Props/Looks/Leaves", (0.12, 0.3, 0.06), 0.6)
    granite = _preview_material(stage, "/Props/Looks/Granite", (0.42, 0.40, 0.38), 0.75)
    wood = _preview_material(stage, "/Props/Looks/Wood", (0.45, 0.27, 0.13), 0.6)

    rock = UsdGeom.Xform.Define(stage, "/Props/Rock_Granite")
    Usd.ModelAPI(rock.GetPrim()).SetKind(Kind.Tokens.component)
    rock.GetPrim().SetAssetInfoByKey("identifier", Sdf.AssetPath("../env/rocks/rock_granite_v002.obj"))
    rock.GetPrim().SetAssetInfoByKey("version", "v002")
    pts, counts, idx = _read_obj(rock_obj)
    mesh = UsdGeom.Mesh.Define(stage, "/Props/Rock_Granite/geo")
    mesh.CreatePointsAttr(Vt.Vec3fArray(pts))
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray(counts))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray(idx))
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    lo = [min(p[i] for p in pts) for i in range(3)]
    hi = [max(p[i] for p in pts) for i in range(3)]
    mesh.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*lo), Gf.Vec3f(*hi)]))
    UsdShade.MaterialBindingAPI.Apply(mesh.GetPrim()).Bind(granite)

    crate = UsdGeom.Xform.Define(stage, "/Props/Crate")
    Usd.ModelAPI(crate.GetPrim()).SetKind(Kind.Tokens.component)
    crate.GetPrim().SetAssetInfoByKey("identifier", Sdf.AssetPath("../props/crate_v001.fbx"))
    cube = UsdGeom.Cube.Define(stage, "/Props/Crate/geo")
    cube.CreateSizeAttr(1.0)
    cube.AddTranslateOp().Set(Gf.Vec3d(0, 0, 0.5))
    UsdShade.MaterialBindingAPI.Apply(cube.GetPrim()).Bind(wood)

    oak = UsdGeom.Xform.Define(stage, "/Props/Oak_Proxy")
    Usd.ModelAPI(oak.GetPrim()).SetKind(Kind.Tokens.component)
    oak.GetPrim().SetAssetInfoByKey("identifier", Sdf.AssetPath("../env/oak/tree_oak_v001.glb"))
    oak.GetPrim().SetAssetInfoByKey("version", "v001")
    trunk = UsdGeom.Cylinder.Define(stage, "/Props/Oak_Proxy/trunk")
    trunk.CreateRadiusAttr(0.35)
    trunk.CreateHeightAttr(4.0)
    trunk.CreateAxisAttr(UsdGeom.Tokens.z)
    trunk.AddTranslateOp().Set(Gf.Vec3d(0, 0, 2.0))
    UsdShade.MaterialBindingAPI.Apply(trunk.GetPrim()).Bind(bark)
    canopy = UsdGeom.Sphere.Define(stage, "/Props/Oak_Proxy/canopy")
    canopy.CreateRadiusAttr(2.4)
    canopy.AddTranslateOp().Set(Gf.Vec3d(0, 0, 5.0))
    UsdShade.MaterialBindingAPI.Apply(canopy.GetPrim()).Bind(leaves)
    stage.GetRootLayer().Save()


def write_layout(path: Path, props_name: str) -> None:
    if path.exists():
        path.unlink()
    stage = Usd.Stage.CreateNew(str(path))
    _stage_meta(stage, "Forest layout v001 - sq020 set dressing (trees, rocks, crate)")
    stage.SetStartTimeCode(1)
    stage.SetEndTimeCode(48)
    stage.SetTimeCodesPerSecond(24)
    stage.SetFramesPerSecond(24)
    world = UsdGeom.Xform.Define(stage, "/World")
    Usd.ModelAPI(world.GetPrim()).SetKind(Kind.Tokens.assembly)
    stage.SetDefaultPrim(world.GetPrim())
    ref = "./" + props_name

    UsdGeom.Xform.Define(stage, "/World/Trees")
    trees = [(-6.0, 4.0, 0, 1.1), (-1.5, 9.0, 40, 0.9), (4.0, 6.5, 110, 1.25),
             (8.0, 12.0, 200, 1.0), (-9.0, 14.0, 300, 1.15)]
    for i, (x, y, rz, s) in enumerate(trees, 1):
        xf = UsdGeom.Xform.Define(stage, f"/World/Trees/Oak_{i:02d}")
        xf.GetPrim().GetReferences().AddReference(ref, "/Props/Oak_Proxy")
        xf.AddTranslateOp().Set(Gf.Vec3d(x, y, 0))
        xf.AddRotateZOp().Set(float(rz))
        xf.AddScaleOp().Set(Gf.Vec3f(s, s, s))

    UsdGeom.Xform.Define(stage, "/World/Rocks")
    for i, (x, y, s) in enumerate([(-3.0, 1.0, 0.6), (2.5, 2.0, 0.8), (0.5, 5.0, 0.5)], 1):
        xf = UsdGeom.Xform.Define(stage, f"/World/Rocks/Rock_{i:02d}")
        xf.GetPrim().GetReferences().AddReference(ref, "/Props/Rock_Granite")
        xf.AddTranslateOp().Set(Gf.Vec3d(x, y, 0.1))
        xf.AddScaleOp().Set(Gf.Vec3f(s, s, s * 0.8))

    crate = UsdGeom.Xform.Define(stage, "/World/Crate_01")
    crate.GetPrim().GetReferences().AddReference(ref, "/Props/Crate")
    t = crate.AddTranslateOp()
    r = crate.AddRotateZOp()
    for f in (1, 12, 24, 36, 48):
        hop = 1.5 * math.sin(math.pi * (f - 1) / 47.0)
        t.Set(Gf.Vec3d(0.0, 0.0, hop), f)
        r.Set(90.0 * (f - 1) / 47.0, f)

    cam = UsdGeom.Camera.Define(stage, "/World/Layout_Cam")
    cam.CreateFocalLengthAttr(28.0)
    cam.CreateClippingRangeAttr(Gf.Vec2f(0.1, 500.0))
    ct = cam.AddTranslateOp()
    cam.AddRotateXYZOp().Set(Gf.Vec3f(84.0, 0.0, 15.0))
    for f, x in ((1, 4.0), (48, 1.0)):
        ct.Set(Gf.Vec3d(x, -11.0, 1.6), f)
    stage.GetRootLayer().Save()


def write(props_path: Path, layout_path: Path, rock_obj: Path) -> None:
    write_props(props_path, rock_obj)
    write_layout(layout_path, props_path.name)
    # sanity check: the composed stage resolves the references
    stage = Usd.Stage.Open(str(layout_path))
    assert stage.GetPrimAtPath("/World/Rocks/Rock_01/geo").IsA(UsdGeom.Mesh)
    assert stage.GetPrimAtPath("/World/Trees/Oak_01/canopy").IsValid()
