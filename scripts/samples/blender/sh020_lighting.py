"""sh020_lighting_v002.blend + the sh020 beauty render (multi-layer EXR and PNG).

The lighting file links the castle set (collection Castle_Env) and the dragon
(collection Dragon) and lights them with the sunset HDRI and a low sun.
Renders Cycles at 320x180 with render passes + Cryptomatte.
Args: --out FILE.blend --castle BLEND --dragon BLEND --hdri EXR
      --exr OUT.exr --png OUT.png --tmp DIR
"""
import math
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bpy  # noqa: E402

import common as C  # noqa: E402


def link_collection(path, name, inst_name, location, rotation=(0, 0, 0), scale=1.0):
    with bpy.data.libraries.load(path, link=True, relative=True) as (src, dst):
        dst.collections = [name]
    inst = bpy.data.objects.new(inst_name, None)
    inst.instance_type = "COLLECTION"
    inst.instance_collection = dst.collections[0]
    inst.location = location
    inst.rotation_euler = rotation
    inst.scale = (scale, scale, scale)
    bpy.context.scene.collection.objects.link(inst)
    return inst


def main():
    a = C.script_args()
    out = a["out"]
    C.reset_scene()
    sc = C.setup_scene("CYCLES", 1920, 1080, 100, 1001, 1096, 24, samples=24)
    sc.cycles.max_bounces = 4
    sc.view_settings.look = "Medium High Contrast"
    os.makedirs(os.path.dirname(out), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=out)  # give the file a location first

    # world: sunset HDRI
    world = C.set_world((0.8, 0.45, 0.25), 1.0, name="sh020_sunset")
    nt = world.node_tree
    env = nt.nodes.new("ShaderNodeTexEnvironment")
    env.location = (-400, 300)
    env.image = bpy.data.images.load(a["hdri"])
    nt.links.new(env.outputs["Color"], nt.nodes["Background"].inputs["Color"])

    link_collection(a["castle"], "Castle_Env", "Castle_Set", (0, 0, 0))
    link_collection(a["dragon"], "Dragon", "Dragon_Hero", (3.5, -6.5, 5.4),
                    rotation=(math.radians(8), math.radians(-12), math.radians(-35)),
                    scale=1.15)

    key = C.add_light("Sunset_Key", "SUN", (0, 0, 0), energy=3.5, color=(1.0, 0.55, 0.28),
                      size=2.0)
    key.rotation_euler = (math.radians(80), 0.0, math.radians(-65))
    rim = C.add_light("Rim_Light", "AREA", (-6.0, 8.0, 9.0), (3.5, -6.5, 6.0), energy=900,
                      color=(0.55, 0.65, 1.0), size=4.0)
    del rim
    cam = C.add_camera("sh020_Camera", (13.0, -19.0, 2.2), (0.5, -1.0, 5.2), lens=30)
    del cam

    vl = sc.view_layers[0]
    vl.name = "beauty"
    vl.use_pass_z = True
    vl.use_pass_mist = True
    vl.use_pass_normal = True
    vl.use_pass_diffuse_color = True
    vl.use_pass_diffuse_direct = True
    vl.use_pass_glossy_direct = True
    vl.use_pass_emit = True
    vl.use_pass_ambient_occlusion = True
    vl.use_pass_cryptomatte_object = True
    vl.pass_cryptomatte_depth = 2
    world.mist_settings.start = 5.0
    world.mist_settings.depth = 60.0

    r = sc.render
    for attr in ("use_stamp_date", "use_stamp_time", "use_stamp_render_time",
                 "use_stamp_memory", "use_stamp_hostname", "use_stamp_filename",
                 "use_stamp_frame_range", "use_stamp_marker", "use_stamp_sequencer_strip"):
        setattr(r, attr, False)
    r.use_stamp_note = True
    r.stamp_note_text = "dragon sq010/sh020 lighting v002 beauty"
    r.filepath = "//../render/sh020_beauty_v002_####"
    r.image_settings.file_format = "OPEN_EXR_MULTILAYER"

    C.material_previews()
    C.save_blend(out, compress=False, tmpdir=a["tmp"])

    # ---- the render (320x180 proxy resolution)
    sc.frame_set(1048)
    r.resolution_x, r.resolution_y, r.resolution_percentage = 320, 180, 100
    r.film_transparent = False
    s = r.image_settings
    s.file_format = "OPEN_EXR_MULTILAYER"
    s.color_depth = "16"
    s.exr_codec = "ZIP"
    r.filepath = a["exr"]
    r.use_file_extension = False
    bpy.ops.render.render(write_still=True)
    s.file_format = "PNG"
    s.color_mode = "RGBA"
    s.color_depth = "8"
    s.compression = 90
    bpy.data.images["Render Result"].save_render(a["png"], scene=sc)
    C.log("rendered", a["exr"], a["png"])


main()
