"""dragon_flight_sh010_v001.blend: animation file for shot sq010/sh010.

Cycles, 1920x1080, frames 1001-1120 @ 24 fps. Objects Dragon_Rig (armature,
flying + wing flap action), Dragon_Body (mesh skinned to the rig), Shot_Camera.
Material DragonWingMembrane points at //../tex/missing_wing_membrane.png,
which deliberately does not exist (a broken dependency).

After saving, renders a Workbench playblast (frames 1001-1072, 640x360, with
burn-in) to --frames DIR, with the castle set linked in for context (not saved).
Args: --out FILE.blend --skin_tex PNG --castle CASTLE.blend --frames DIR --tmp DIR
"""
import math
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bpy  # noqa: E402
from mathutils import Euler, Matrix  # noqa: E402

import common as C  # noqa: E402
import dragon_geo  # noqa: E402

BONES = [  # name, head, tail, parent
    ("root", (0, -0.5, 0), (0, 0.5, 0), None),
    ("spine", (0, -1.1, 1.05), (0, 0.9, 1.3), "root"),
    ("neck", (0, 0.9, 1.3), (0, 1.5, 1.95), "spine"),
    ("head", (0, 1.5, 1.95), (0, 2.45, 2.0), "neck"),
    ("wing_L", (0.32, 0.45, 1.45), (3.0, 0.6, 1.8), "spine"),
    ("wing_R", (-0.32, 0.45, 1.45), (-3.0, 0.6, 1.8), "spine"),
    ("tail_01", (0, -1.15, 1.0), (0.25, -2.55, 0.55), "spine"),
    ("tail_02", (0.25, -2.55, 0.55), (0.45, -4.45, 0.38), "tail_01"),
]


def smooth_step(a, b, x):
    t = min(1.0, max(0.0, (x - a) / (b - a)))
    return t * t * (3 - 2 * t)


def build_rig():
    arm = bpy.data.armatures.new("Dragon_Rig")
    rig = bpy.data.objects.new("Dragon_Rig", arm)
    bpy.context.scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    for name, head, tail, parent in BONES:
        eb = arm.edit_bones.new(name)
        eb.head, eb.tail = head, tail
        if parent:
            eb.parent = arm.edit_bones[parent]
            eb.use_connect = tuple(arm.edit_bones[parent].tail) == tuple(eb.head)
    bpy.ops.object.mode_set(mode="OBJECT")
    arm.display_type = "OCTAHEDRAL"
    rig.show_in_front = True
    return rig


def build_body(skin, eyes, membrane):
    """One skinned mesh: body + wings + tail, with per-bone vertex groups."""
    import bmesh
    parts = []
    bm, origin = dragon_geo.build_body()
    parts.append((bm, Matrix.Translation(origin), "body", [skin, eyes]))
    for side, name in ((1, "wing_L"), (-1, "wing_R")):
        bm, origin = dragon_geo.build_wing(side)
        rot = Euler((0.0, math.radians(-30 * side), math.radians(8 * side))).to_matrix().to_4x4()
        parts.append((bm, Matrix.Translation(origin) @ rot, name, [membrane]))
    bm, origin = dragon_geo.build_tail()
    parts.append((bm, Matrix.Translation(origin), "tail", [skin]))

    mesh = bpy.data.meshes.new("Dragon_Body")
    obj = bpy.data.objects.new("Dragon_Body", mesh)
    bpy.context.scene.collection.objects.link(obj)
    for m in (skin, eyes, membrane):
        mesh.materials.append(m)
    slot = {m.name: i for i, m in enumerate(mesh.materials)}
    groups = {b[0]: obj.vertex_groups.new(name=b[0]) for b in BONES if b[0] != "root"}

    combined = bmesh.new()
    deform = combined.verts.layers.deform.verify()
    for bm, mat, kind, mats in parts:
        bm.transform(mat)
        for f in bm.faces:
            f.material_index = slot[mats[f.material_index].name]
        tmp = bpy.data.meshes.new("tmp")
        bm.to_mesh(tmp)
        bm.free()
        before = len(combined.verts)
        combined.from_mesh(tmp)
        bpy.data.meshes.remove(tmp)
        combined.verts.ensure_lookup_table()
        for v in combined.verts[before:]:
            y = v.co.y
            if kind in ("wing_L", "wing_R"):
                w = {kind: 1.0}
            elif kind == "tail":
                t = smooth_step(-2.2, -3.0, y)
                w = {"tail_01": 1.0 - t, "tail_02": t}
                s = smooth_step(-1.0, -1.5, y)
                w = {k: val * s for k, val in w.items()}
                w["spine"] = 1.0 - s
            else:
                n = smooth_step(0.7, 1.1, y)
                h = smooth_step(1.4, 1.6, y)
                w = {"spine": 1.0 - n, "neck": n * (1.0 - h), "head": h}
                tl = smooth_step(-1.0, -1.3, y)
                if tl > 0:
                    w = {"spine": 1.0 - tl, "tail_01": tl}
            for g, val in w.items():
                if val > 1e-4:
                    v[deform][groups[g].index] = val
    combined.to_mesh(mesh)
    combined.free()
    for p in mesh.polygons:
        p.use_smooth = True
    return obj


def animate(rig):
    sc = bpy.context.scene
    rig.animation_data_create()
    action = bpy.data.actions.new("Dragon_Rig_sh010_anim")
    rig.animation_data.action = action
    # flight path: takes off near the castle and climbs away
    for f, loc, rot_z in ((1001, (0.0, -12.0, 0.0), 0.0), (1030, (0.0, -5.0, 2.0), 0.0),
                          (1080, (2.0, 8.0, 7.0), -0.15), (1120, (5.0, 18.0, 11.0), -0.3)):
        rig.location = loc
        rig.rotation_euler = (math.radians(12) if f > 1001 else 0.0, 0.0, rot_z)
        rig.keyframe_insert("location", frame=f)
        rig.keyframe_insert("rotation_euler", frame=f)
    pb = rig.pose.bones
    for b in pb:
        b.rotation_mode = "XYZ"
    # wing flap: 16-frame cycle
    for f in range(1001, 1121, 4):
        phase = math.sin((f - 1001) / 16.0 * 2 * math.pi)
        for name in ("wing_L", "wing_R"):
            pb[name].rotation_euler = (0.0, 0.0, 0.0)
            pb[name].rotation_euler.x = 0.7 * phase
            pb[name].keyframe_insert("rotation_euler", frame=f)
        pb["tail_01"].rotation_euler = (0.0, 0.0, 0.25 * math.sin((f - 1001) / 24.0 * 2 * math.pi))
        pb["tail_01"].keyframe_insert("rotation_euler", frame=f)
        pb["tail_02"].rotation_euler = (0.0, 0.0, 0.35 * math.sin((f - 1007) / 24.0 * 2 * math.pi))
        pb["tail_02"].keyframe_insert("rotation_euler", frame=f)
        pb["neck"].rotation_euler = (0.12 * math.sin((f - 1001) / 32.0 * 2 * math.pi), 0, 0)
        pb["neck"].keyframe_insert("rotation_euler", frame=f)
    sc.frame_set(1001)


def main():
    a = C.script_args()
    out = a["out"]
    C.reset_scene()
    sc = C.setup_scene("CYCLES", 1920, 1080, 100, 1001, 1120, 24, samples=128)
    C.set_world((0.42, 0.55, 0.75), 1.0)

    skin = C.principled_material("DragonSkin", (0.18, 0.35, 0.12), 0.45)
    node = C.image_node(skin, a["skin_tex"], "Scales Albedo")
    skin.node_tree.links.new(node.outputs["Color"],
                             skin.node_tree.nodes["Principled BSDF"].inputs["Base Color"])
    eyes = C.principled_material("DragonEyes", (1.0, 0.65, 0.05), 0.05,
                                 emission=(1.0, 0.5, 0.0), emission_strength=2.0)
    membrane = C.principled_material("DragonWingMembrane", (0.35, 0.12, 0.08), 0.5)
    mnode = C.missing_image_node(membrane, "//../tex/missing_wing_membrane.png",
                                 "Wing Membrane")
    membrane.node_tree.links.new(mnode.outputs["Color"],
                                 membrane.node_tree.nodes["Principled BSDF"].inputs["Base Color"])

    rig = build_rig()
    body = build_body(skin, eyes, membrane)
    body.parent = rig
    mod = body.modifiers.new("Armature", "ARMATURE")
    mod.object = rig
    C.add_subsurf(body, 1, 2)
    animate(rig)

    cam = C.add_camera("Shot_Camera", (16.0, -14.0, 2.5), (0, 0, 3), lens=32)
    track = cam.constraints.new("TRACK_TO")
    track.target = rig
    track.subtarget = "spine"
    track.track_axis = "TRACK_NEGATIVE_Z"
    track.up_axis = "UP_Y"
    sun = None  # lighting comes later, in the lighting dept
    del sun

    sc.render.filepath = "//../render/dragon_flight_sh010_v001_####"
    sc.frame_set(1040)
    C.material_previews()
    C.save_blend(out, compress=False, tmpdir=a["tmp"])

    # ---- playblast (not saved): link the castle set for context
    with bpy.data.libraries.load(a["castle"], link=True) as (src, dst):
        dst.collections = ["Castle_Env"]
    inst = bpy.data.objects.new("Castle_Set", None)
    inst.instance_type = "COLLECTION"
    inst.instance_collection = dst.collections[0]
    inst.location = (0.0, 6.0, 0.0)
    sc.collection.objects.link(inst)

    r = sc.render
    r.engine = "BLENDER_WORKBENCH"
    sc.display.shading.light = "STUDIO"
    sc.display.shading.color_type = "MATERIAL"
    sc.display.shading.show_shadows = True
    sc.display.shading.show_cavity = False
    sc.display.render_aa = "FXAA"  # playblast quality; multisampling is slow on Mesa
    r.resolution_x, r.resolution_y, r.resolution_percentage = 640, 360, 100
    r.film_transparent = False
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGB"
    r.use_stamp = True
    r.stamp_font_size = 11
    r.use_stamp_date = False
    r.use_stamp_time = False
    r.use_stamp_render_time = False
    r.use_stamp_memory = False
    r.use_stamp_hostname = False
    r.use_stamp_frame = True
    r.use_stamp_camera = True
    r.use_stamp_lens = True
    r.use_stamp_scene = False
    r.use_stamp_filename = False
    r.use_stamp_note = True
    r.stamp_note_text = "dragon sq010/sh010 anim v001 - playblast"
    os.makedirs(a["frames"], exist_ok=True)
    for i, f in enumerate(range(1001, 1073)):
        sc.frame_set(f)
        r.filepath = os.path.join(a["frames"], "frame_%04d.png" % (i + 1))
        bpy.ops.render.render(write_still=True)
    C.log("playblast frames written")


main()
