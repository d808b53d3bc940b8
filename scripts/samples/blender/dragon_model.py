"""dragon_model_v003.blend: the hero dragon model (Cycles, 1920x1080, 1-120 @ 24 fps).

Args: --out FILE.blend --tex DIR (contains dragon_scales_*.png) --tmp DIR
Also renders a wing close-up reference to TMP/ref_wing.png (not saved in the file).
"""
import math
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bpy  # noqa: E402

import common as C  # noqa: E402
import dragon_geo  # noqa: E402


def dragon_materials(tex_dir):
    skin = C.principled_material("DragonSkin", color=(0.18, 0.35, 0.12), roughness=0.45)
    nt = skin.node_tree
    bsdf = nt.nodes["Principled BSDF"]
    mapping = C.uv_mapping(skin, scale=(4.0, 4.0, 1.0))
    alb = C.image_node(skin, os.path.join(tex_dir, "dragon_scales_albedo.png"),
                       "Scales Albedo", location=(-500, 300))
    rough = C.image_node(skin, os.path.join(tex_dir, "dragon_scales_roughness.png"),
                         "Scales Roughness", non_color=True, location=(-500, 0))
    nt.links.new(mapping.outputs["Vector"], alb.inputs["Vector"])
    nt.links.new(mapping.outputs["Vector"], rough.inputs["Vector"])
    nt.links.new(alb.outputs["Color"], bsdf.inputs["Base Color"])
    nt.links.new(rough.outputs["Color"], bsdf.inputs["Roughness"])
    bump = nt.nodes.new("ShaderNodeBump")
    bump.location = (-200, -250)
    bump.inputs["Strength"].default_value = 0.3
    nt.links.new(rough.outputs["Color"], bump.inputs["Height"])
    nt.links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
    bsdf.inputs["Sheen"].default_value = 0.2

    eyes = C.principled_material("DragonEyes", color=(1.0, 0.65, 0.05), roughness=0.05,
                                 emission=(1.0, 0.5, 0.0), emission_strength=2.0)
    eyes.node_tree.nodes["Principled BSDF"].inputs["Specular"].default_value = 1.0
    return skin, eyes


def build_dragon(skin, eyes, collection):
    bm, origin = dragon_geo.build_body()
    body = C.mesh_object("Dragon_Body", bm, collection)
    body.location = origin
    C.assign_material(body, skin, eyes)
    C.add_subsurf(body)

    parts = [body]
    for name, builder in (("Dragon_Wing_L", lambda: dragon_geo.build_wing(1)),
                          ("Dragon_Wing_R", lambda: dragon_geo.build_wing(-1)),
                          ("Dragon_Tail", dragon_geo.build_tail)):
        bm, origin = builder()
        obj = C.mesh_object(name, bm, collection, smooth=(name == "Dragon_Tail"))
        obj.location = origin
        obj.parent = body
        C.assign_material(obj, skin)
        if name == "Dragon_Tail":
            C.add_subsurf(obj)
        parts.append(obj)
    # wings fold slightly upwards
    parts[1].rotation_euler = (0.0, math.radians(-30), math.radians(8))
    parts[2].rotation_euler = (0.0, math.radians(30), math.radians(-8))
    return parts


def main():
    args = C.script_args()
    out, tex_dir, tmp = args["out"], args["tex"], args["tmp"]
    C.reset_scene()
    sc = C.setup_scene("CYCLES", 1920, 1080, 100, 1, 120, 24, samples=64)
    C.set_world((0.045, 0.05, 0.06), 1.0)
    skin, eyes = dragon_materials(tex_dir)
    coll = C.new_collection("Dragon")
    parts = build_dragon(skin, eyes, coll)
    cam = C.add_camera("Camera", (7.5, 6.0, 3.4), (0.0, 0.2, 1.3), lens=45)
    C.frame_camera(cam, parts, direction=(1.0, 0.75, 0.32), margin=1.08)
    C.add_light("Key_Light", "AREA", (4.0, -3.0, 6.0), (0, 0, 1), energy=700, size=3.0,
                color=(1.0, 0.93, 0.85))
    sc.render.film_transparent = False

    # data-block previews: materials + world (real preview renders), objects (Workbench)
    C.material_previews()
    C.object_previews(parts, os.path.join(tmp, "dragon_previews"))
    C.save_blend(out, compress=False, tmpdir=tmp)

    # wing close-up reference image (not part of the saved file)
    cam = sc.camera
    cam.location = (3.6, 2.6, 4.2)
    C.look_at(cam, (1.9, 0.2, 1.6))
    cam.data.lens = 35
    C.render_to_image(os.path.join(tmp, "ref_wing.png"), engine="CYCLES", size=(320, 240),
                      samples=48, transparent=False)


main()
