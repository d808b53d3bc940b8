"""tree_oak_v001.blend (EEVEE, 1920x1080) + tree_oak_v001.glb + the forest dusk render.

Objects Oak_Trunk (material Bark, //tex/bark_albedo.jpg), Oak_Leaves
(material Leaves) and Ground. After saving, exports glTF binary, then scatters
copies of the tree and some rocks under an orange Nishita dusk sky and renders
with Cycles (480x270) to a JPEG and a 16-bit greyscale PNG. The scattered scene is not saved.
Args: --out FILE.blend --glb FILE.glb --png16 FILE --jpg FILE --tmp DIR
"""
import math
import os
import random
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bmesh  # noqa: E402
import bpy  # noqa: E402
from mathutils import Vector, noise  # noqa: E402

import common as C  # noqa: E402

BRANCHES = [  # start height, azimuth deg, length, rise
    (2.0, 20, 2.2, 1.4), (2.4, 140, 2.0, 1.6), (2.7, 250, 2.3, 1.3),
    (3.1, 320, 1.7, 1.7), (3.4, 80, 1.6, 1.9),
]


def trunk_mesh():
    bm = bmesh.new()
    uv = bm.loops.layers.uv.verify()
    C.loft(bm, [(0, 0, -0.2, 0.62, 0.62), (0, 0, 0.3, 0.42, 0.42), (0.05, 0.0, 1.8, 0.34, 0.34),
                (0.0, 0.1, 3.4, 0.26, 0.26), (-0.1, 0.1, 4.6, 0.14, 0.14)],
           segments=14, samples_per_seg=3, uv_layer=uv, v_repeat=3.0)
    tips = [Vector((-0.1, 0.1, 4.6))]
    for z, az, length, rise in BRANCHES:
        a = math.radians(az)
        d = Vector((math.cos(a), math.sin(a), 0.0))
        p0 = Vector((0, 0, z))
        p1 = p0 + d * length * 0.5 + Vector((0, 0, rise * 0.4))
        p2 = p0 + d * length + Vector((0, 0, rise))
        C.loft(bm, [(*p0, 0.17, 0.17), (*p1, 0.11, 0.11), (*p2, 0.05, 0.05)],
               segments=8, samples_per_seg=3, uv_layer=uv, v_repeat=1.5)
        tips.append(p2)
    return bm, tips


def leaves_mesh(tips, rng):
    bm = bmesh.new()
    centers = [t + Vector((0, 0, 0.3)) for t in tips]
    centers += [Vector((0.4, -0.3, 5.2)), Vector((-0.8, 0.7, 4.8)), Vector((1.0, 0.9, 4.4))]
    for c in centers:
        r = rng.uniform(1.0, 1.5)
        m = __import__("mathutils").Matrix.Translation(c)
        res = bmesh.ops.create_icosphere(bm, subdivisions=2, radius=r, matrix=m, calc_uvs=True)
        for v in res["verts"]:
            n = noise.noise(v.co * 1.3)
            v.co += (v.co - c).normalized() * 0.35 * n
    bm.normal_update()
    return bm


def materials(tex_dir):
    bark = C.principled_material("Bark", (0.3, 0.2, 0.12), 0.9)
    nt = bark.node_tree
    mp = C.uv_mapping(bark, scale=(2.0, 1.0, 1.0))
    img = C.image_node(bark, os.path.join(tex_dir, "bark_albedo.jpg"), "Bark Albedo")
    nt.links.new(mp.outputs["Vector"], img.inputs["Vector"])
    nt.links.new(img.outputs["Color"], nt.nodes["Principled BSDF"].inputs["Base Color"])

    leaves = C.principled_material("Leaves", (0.12, 0.3, 0.06), 0.6)
    nt = leaves.node_tree
    bsdf = nt.nodes["Principled BSDF"]
    nz = nt.nodes.new("ShaderNodeTexNoise")
    nz.location = (-700, 250)
    nz.inputs["Scale"].default_value = 6.0
    ramp = nt.nodes.new("ShaderNodeValToRGB")
    ramp.location = (-450, 250)
    ramp.color_ramp.elements[0].color = (0.05, 0.16, 0.03, 1.0)
    ramp.color_ramp.elements[1].color = (0.25, 0.42, 0.08, 1.0)
    nt.links.new(nz.outputs["Fac"], ramp.inputs["Fac"])
    nt.links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Subsurface"].default_value = 0.0

    ground = C.principled_material("Forest_Floor", (0.13, 0.1, 0.06), 0.95)
    return bark, leaves, ground


def main():
    a = C.script_args()
    out = a["out"]
    rng = random.Random(42)
    C.reset_scene()
    sc = C.setup_scene("BLENDER_EEVEE", 1920, 1080, 100, 1, 48, 24, samples=16)
    C.set_world((0.5, 0.6, 0.75), 1.0)
    bark, leaves, ground_mat = materials(os.path.join(os.path.dirname(out), "tex"))

    bm, tips = trunk_mesh()
    trunk = C.mesh_object("Oak_Trunk", bm)
    C.assign_material(trunk, bark)
    leaf = C.mesh_object("Oak_Leaves", leaves_mesh(tips, rng))
    C.assign_material(leaf, leaves)
    leaf.parent = trunk
    bm = bmesh.new()
    bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=8.0, calc_uvs=True)
    ground = C.mesh_object("Ground", bm, smooth=False)
    C.assign_material(ground, ground_mat)

    C.material_previews()
    C.save_blend(out, compress=False, tmpdir=a["tmp"],
                 thumb_view=([trunk, leaf], (1.0, -1.2, 0.35)))

    C.ensure_numpy()
    bpy.ops.export_scene.gltf(filepath=a["glb"], export_format="GLB", export_apply=True,
                              export_cameras=False, export_lights=False,
                              export_extras=True, export_yup=True)
    C.log("exported", a["glb"])

    # ---- forest at dusk (render only)
    sc.render.engine = "CYCLES"
    sc.cycles.samples = 24
    sc.cycles.max_bounces = 4
    sc.view_settings.look = "Medium High Contrast"
    ground.scale = (6.0, 6.0, 1.0)
    for i in range(9):
        t2 = trunk.copy()
        l2 = leaf.copy()
        sc.collection.objects.link(t2)
        sc.collection.objects.link(l2)
        l2.parent = t2
        ang = rng.uniform(0, 2 * math.pi)
        dist = rng.uniform(7.0, 22.0)
        t2.location = (math.cos(ang) * dist, math.sin(ang) * dist + 10.0, 0.0)
        t2.rotation_euler.z = rng.uniform(0, 2 * math.pi)
        sz = rng.uniform(0.8, 1.3)
        t2.scale = (sz, sz, sz)
    rock_mat = C.principled_material("Granite", (0.35, 0.34, 0.33), 0.8)
    for i in range(5):
        bm = bmesh.new()
        bmesh.ops.create_icosphere(bm, subdivisions=2, radius=1.0)
        for v in bm.verts:
            v.co *= 1.0 + 0.3 * noise.noise(v.co * 1.7 + Vector((i, 0, 0)))
        rock = C.mesh_object("Rock_%02d" % i, bm, smooth=False)
        rock.location = (rng.uniform(-6, 6), rng.uniform(-3, 6), 0.1)
        rock.scale = (rng.uniform(0.4, 0.9),) * 2 + (rng.uniform(0.3, 0.6),)
        rock.data.materials.append(rock_mat)

    world = sc.world
    nt = world.node_tree
    sky = nt.nodes.new("ShaderNodeTexSky")
    sky.sky_type = "NISHITA"
    sky.sun_elevation = math.radians(2.5)
    sky.sun_rotation = math.radians(160)
    sky.air_density = 2.0
    sky.dust_density = 4.0
    nt.links.new(sky.outputs["Color"], nt.nodes["Background"].inputs["Color"])
    nt.nodes["Background"].inputs["Strength"].default_value = 0.35
    sun = C.add_light("Dusk_Sun", "SUN", (0, 0, 0), energy=2.5, color=(1.0, 0.45, 0.15), size=1)
    sun.rotation_euler = (math.radians(86), 0.0, math.radians(160 + 180 - 90))
    cam = C.add_camera("Forest_Camera", (4.5, -11.0, 1.6), (-1.0, 8.0, 3.2), lens=28)
    del cam

    r = sc.render
    r.resolution_x, r.resolution_y, r.resolution_percentage = 480, 270, 100
    r.film_transparent = False
    r.use_stamp_note = True
    r.stamp_note_text = "forest dusk v002"
    for attr in ("use_stamp_date", "use_stamp_time", "use_stamp_render_time",
                 "use_stamp_memory", "use_stamp_hostname", "use_stamp_filename"):
        setattr(r, attr, False)
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGB"
    r.filepath = os.path.join(a["tmp"], "forest_dusk_beauty.png")
    bpy.ops.render.render(write_still=True)
    result = bpy.data.images["Render Result"]
    s = r.image_settings
    s.file_format = "JPEG"
    s.color_mode = "RGB"
    s.quality = 90
    result.save_render(a["jpg"], scene=sc)
    # 16-bit greyscale PNG (PIL mode "I;16") of the same render
    s.file_format = "PNG"
    s.color_mode = "BW"
    s.color_depth = "16"
    s.compression = 90
    result.save_render(a["png16"], scene=sc)
    C.log("rendered", a["png16"], a["jpg"])


main()
