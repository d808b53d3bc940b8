"""Interchange exports for the forest project (nothing is saved as .blend).

* rock_granite_v002.obj (+ .mtl): displaced icosphere "Rock_Granite", material
  Granite, exported with the C++ OBJ exporter (wm.obj_export).
* crate_v001.fbx: cube "Crate" with material Wood and a keyframed hop/spin
  (frames 1-48 @ 24 fps), exported with export_scene.fbx.
Args: --obj FILE.obj --fbx FILE.fbx
"""
import math
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bmesh  # noqa: E402
import bpy  # noqa: E402

import common as C  # noqa: E402


def select_only(obj):
    for o in bpy.context.scene.objects:
        o.select_set(o is obj)
    bpy.context.view_layer.objects.active = obj


def rock(path):
    bm = bmesh.new()
    bmesh.ops.create_icosphere(bm, subdivisions=4, radius=1.0, calc_uvs=True)
    obj = C.mesh_object("Rock_Granite", bm, smooth=True)
    obj.scale = (1.3, 1.0, 0.7)
    tex = bpy.data.textures.new("Granite_Clouds", "CLOUDS")
    tex.noise_scale = 0.6
    tex.noise_depth = 3
    disp = obj.modifiers.new("Displace", "DISPLACE")
    disp.texture = tex
    disp.strength = 0.45
    disp.mid_level = 0.5
    mat = C.principled_material("Granite", (0.42, 0.40, 0.38), 0.75)
    obj.data.materials.append(mat)
    select_only(obj)
    bpy.ops.wm.obj_export(filepath=path, export_selected_objects=True, apply_modifiers=True,
                          export_materials=True, export_uv=True, export_normals=True,
                          forward_axis="NEGATIVE_Z", up_axis="Y")
    C.log("exported", path)
    obj.hide_set(True)


def crate(path):
    sc = bpy.context.scene
    sc.frame_start, sc.frame_end = 1, 48
    sc.render.fps = 24
    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=1.0, calc_uvs=True)
    bmesh.ops.bevel(bm, geom=list(bm.edges), offset=0.04, segments=2, affect="EDGES")
    obj = C.mesh_object("Crate", bm, smooth=False)
    obj.location = (0, 0, 0.5)
    wood = C.principled_material("Wood", (0.45, 0.27, 0.13), 0.6)
    obj.data.materials.append(wood)
    # a hop with a quarter turn and landing squash
    keys = [(1, 0.5, 0.0, 1.0), (12, 0.45, 0.0, 0.85), (24, 2.0, 45.0, 1.05),
            (36, 0.5, 90.0, 1.0), (42, 0.45, 90.0, 0.9), (48, 0.5, 90.0, 1.0)]
    for f, z, rot, sq in keys:
        obj.location.z = z
        obj.rotation_euler.z = math.radians(rot)
        obj.scale = (1.0 + (1.0 - sq) * 0.5, 1.0 + (1.0 - sq) * 0.5, sq)
        obj.keyframe_insert("location", frame=f)
        obj.keyframe_insert("rotation_euler", frame=f)
        obj.keyframe_insert("scale", frame=f)
    obj.animation_data.action.name = "Crate_hop"
    select_only(obj)
    C.ensure_numpy()
    bpy.ops.export_scene.fbx(filepath=path, use_selection=True, object_types={"MESH"},
                             bake_anim=True, bake_anim_use_all_actions=False,
                             bake_anim_use_nla_strips=False, add_leaf_bones=False,
                             path_mode="AUTO", axis_forward="-Z", axis_up="Y")
    C.log("exported", path)


def main():
    a = C.script_args()
    C.reset_scene()
    C.setup_scene("CYCLES", 1920, 1080, 100, 1, 48, 24)
    for p in (a["obj"], a["fbx"]):
        os.makedirs(os.path.dirname(p), exist_ok=True)
    rock(a["obj"])
    crate(a["fbx"])


main()
