"""props_library_v001.blend: set-dressing props (Workbench, 1280x720).

Collection "Props" with Barrel, Crate, Lantern; material "Wood".
The three props are marked as assets (with previews) so they show up in an
asset browser. Args: --out FILE.blend --tmp DIR
"""
import math
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bmesh  # noqa: E402
import bpy  # noqa: E402

import common as C  # noqa: E402


def wood_material():
    mat = C.principled_material("Wood", color=(0.45, 0.27, 0.13), roughness=0.6)
    nt = mat.node_tree
    bsdf = nt.nodes["Principled BSDF"]
    wave = nt.nodes.new("ShaderNodeTexWave")
    wave.location = (-700, 250)
    wave.wave_type = "RINGS"
    wave.inputs["Scale"].default_value = 2.5
    wave.inputs["Distortion"].default_value = 6.0
    ramp = nt.nodes.new("ShaderNodeValToRGB")
    ramp.location = (-450, 250)
    ramp.color_ramp.elements[0].color = (0.22, 0.11, 0.05, 1.0)
    ramp.color_ramp.elements[1].color = (0.55, 0.34, 0.17, 1.0)
    nt.links.new(wave.outputs["Fac"], ramp.inputs["Fac"])
    nt.links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def barrel(coll, wood, metal):
    bm = bmesh.new()
    uv = bm.loops.layers.uv.verify()
    profile = [(0.0, 0.0, 0.0, 0.40, 0.40), (0.0, 0.0, 0.45, 0.47, 0.47),
               (0.0, 0.0, 0.9, 0.40, 0.40)]
    C.loft(bm, profile, segments=20, samples_per_seg=4, uv_layer=uv)
    for z in (0.12, 0.78):  # iron hoops
        C.loft(bm, [(0.0, 0.0, z - 0.03, 0.445, 0.445), (0.0, 0.0, z + 0.03, 0.445, 0.445)],
               segments=20, samples_per_seg=1, uv_layer=uv, mat_index=1)
    obj = C.mesh_object("Barrel", bm, coll)
    C.assign_material(obj, wood, metal)
    obj.location = (-1.2, 0.0, 0.0)
    return obj


def crate(coll, wood):
    bm = bmesh.new()
    C.add_box(bm, (0, 0, 0.4), (0.8, 0.8, 0.8))
    # planks on each side face
    for ang in (0, 90, 180, 270):
        r = math.radians(ang)
        for dz in (0.15, 0.65):
            C.add_box(bm, (0.42 * math.cos(r), 0.42 * math.sin(r), dz), (0.05, 0.84, 0.12),
                      rotation=(0, 0, r))
    obj = C.mesh_object("Crate", bm, coll, smooth=False)
    bev = obj.modifiers.new("Bevel", "BEVEL")
    bev.width = 0.01
    C.assign_material(obj, wood)
    obj.location = (0.0, 0.0, 0.0)
    return obj


def lantern(coll, metal, glass):
    bm = bmesh.new()
    C.add_cone(bm, (0, 0, 0), 0.16, 0.16, 0.05, segments=8)  # base
    C.add_cone(bm, (0, 0, 0.05), 0.12, 0.12, 0.32, segments=8, mat_index=1)  # glass
    for i in range(4):  # frame posts
        a = math.radians(45 + 90 * i)
        C.add_box(bm, (0.14 * math.cos(a), 0.14 * math.sin(a), 0.21), (0.025, 0.025, 0.34))
    C.add_cone(bm, (0, 0, 0.37), 0.18, 0.02, 0.16, segments=8)  # roof
    ring = bmesh.ops.create_circle(bm, segments=12, radius=0.06)
    bmesh.ops.translate(bm, verts=ring["verts"], vec=(0, 0, 0.6))
    bmesh.ops.rotate(bm, verts=ring["verts"], cent=(0, 0, 0.6),
                     matrix=__import__("mathutils").Matrix.Rotation(math.pi / 2, 3, "X"))
    obj = C.mesh_object("Lantern", bm, coll, smooth=False)
    C.assign_material(obj, metal, glass)
    obj.location = (1.1, 0.0, 0.0)
    return obj


def main():
    a = C.script_args()
    C.reset_scene()
    sc = C.setup_scene("BLENDER_WORKBENCH", 1280, 720, 100, 1, 48, 24)
    sc.display.shading.show_cavity = True
    sc.display.shading.show_shadows = True
    C.set_world((0.25, 0.27, 0.3))
    wood = wood_material()
    metal = C.principled_material("Iron", (0.12, 0.12, 0.13), 0.35, metallic=1.0)
    glass = C.principled_material("LanternGlass", (1.0, 0.7, 0.3), 0.1,
                                  emission=(1.0, 0.6, 0.2), emission_strength=4.0)
    coll = C.new_collection("Props")
    props = [barrel(coll, wood, metal), crate(coll, wood), lantern(coll, metal, glass)]

    descriptions = {
        "Barrel": ("Oak barrel with two iron hoops.", ["wood", "container", "medieval"]),
        "Crate": ("Wooden crate with side planks.", ["wood", "container"]),
        "Lantern": ("Hanging iron lantern with warm glowing glass.", ["light", "metal"]),
    }
    for obj in props:
        obj.asset_mark()
        desc, tags = descriptions[obj.name]
        obj.asset_data.description = desc
        obj.asset_data.author = "dragon modelling dept"
        for t in tags:
            obj.asset_data.tags.new(t)
    C.material_previews()
    C.object_previews(props, os.path.join(a["tmp"], "props_previews"))
    C.save_blend(a["out"], compress=False, tmpdir=a["tmp"],
                 thumb_view=(props, (0.5, -1.0, 0.45)))


main()
