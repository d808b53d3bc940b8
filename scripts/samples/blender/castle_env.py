"""castle_env_v002.blend: castle environment (EEVEE, 4K at 50%, 1001-1100 @ 25 fps).

Objects Castle_Wall, Castle_Tower, Castle_Gate, Ground, Sun (+ the Props_Set
instance empty; no camera). Materials Brick (//tex/brick_albedo.png + normal map) and
Stone. Links collection "Props" from ../../props/props_library_v001.blend and
instances it. Saved compressed (zstd).
Args: --out FILE.blend --props PROPS.blend --tmp DIR
"""
import math
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bmesh  # noqa: E402
import bpy  # noqa: E402

import common as C  # noqa: E402


def object_coords(mat, scale, location=(-900, 200)):
    nt = mat.node_tree
    tc = nt.nodes.new("ShaderNodeTexCoord")
    tc.location = (location[0] - 200, location[1])
    mp = nt.nodes.new("ShaderNodeMapping")
    mp.location = location
    mp.inputs["Scale"].default_value = scale
    nt.links.new(tc.outputs["Object"], mp.inputs["Vector"])
    return mp


def brick_material(tex_dir):
    mat = C.principled_material("Brick", (0.5, 0.2, 0.15), 0.8)
    nt = mat.node_tree
    bsdf = nt.nodes["Principled BSDF"]
    mp = object_coords(mat, (0.5, 0.5, 1.0))
    alb = C.image_node(mat, os.path.join(tex_dir, "brick_albedo.png"), "Brick Albedo",
                       location=(-500, 300))
    nrm = C.image_node(mat, os.path.join(tex_dir, "brick_normal.png"), "Brick Normal",
                       non_color=True, location=(-500, -50))
    for node in (alb, nrm):
        node.projection = "BOX"
        node.projection_blend = 0.2
        nt.links.new(mp.outputs["Vector"], node.inputs["Vector"])
    nmap = nt.nodes.new("ShaderNodeNormalMap")
    nmap.location = (-200, -150)
    nt.links.new(alb.outputs["Color"], bsdf.inputs["Base Color"])
    nt.links.new(nrm.outputs["Color"], nmap.inputs["Color"])
    nt.links.new(nmap.outputs["Normal"], bsdf.inputs["Normal"])
    return mat


def stone_material():
    mat = C.principled_material("Stone", (0.42, 0.41, 0.38), 0.85)
    nt = mat.node_tree
    bsdf = nt.nodes["Principled BSDF"]
    vor = nt.nodes.new("ShaderNodeTexVoronoi")
    vor.location = (-700, 200)
    vor.inputs["Scale"].default_value = 3.0
    ramp = nt.nodes.new("ShaderNodeValToRGB")
    ramp.location = (-450, 200)
    ramp.color_ramp.elements[0].color = (0.25, 0.24, 0.22, 1.0)
    ramp.color_ramp.elements[1].color = (0.55, 0.54, 0.5, 1.0)
    nt.links.new(vor.outputs["Distance"], ramp.inputs["Fac"])
    nt.links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def merlons(bm, x0, x1, y, z, step=1.0, size=(0.5, 1.0, 0.6), mat_index=0):
    n = int((x1 - x0) / step)
    for i in range(n + 1):
        C.add_box(bm, (x0 + i * step, y, z + size[2] / 2), size, mat_index=mat_index)


def build(coll, brick, stone):
    objs = []
    # wall with a 3 m opening for the gate
    bm = bmesh.new()
    for x0, x1 in ((-7.0, -1.5), (1.5, 7.0)):
        C.add_box(bm, ((x0 + x1) / 2, 0.0, 2.0), (x1 - x0, 1.0, 4.0))
        merlons(bm, x0 + 0.25, x1 - 0.25, 0.0, 4.0)
    C.add_box(bm, (0.0, 0.0, 3.6), (3.0, 1.0, 0.8))  # above the gate
    merlons(bm, -1.25, 1.25, 0.0, 4.0)
    C.add_box(bm, (7.6, 0.0, 2.75), (1.8, 1.8, 5.5))  # square corner tower
    merlons(bm, 6.9, 8.3, -0.65, 5.5, step=0.7, size=(0.35, 0.35, 0.5))
    merlons(bm, 6.9, 8.3, 0.65, 5.5, step=0.7, size=(0.35, 0.35, 0.5))
    wall = C.mesh_object("Castle_Wall", bm, coll, smooth=False)
    C.assign_material(wall, brick)
    objs.append(wall)

    # round keep tower with a conical stone roof
    bm = bmesh.new()
    C.add_cone(bm, (0, 0, 0), 2.0, 2.0, 8.0, segments=24)
    C.add_cone(bm, (0, 0, 8.0), 2.3, 2.3, 0.6, segments=24)
    for i in range(12):
        a = 2 * math.pi * i / 12
        C.add_box(bm, (2.1 * math.cos(a), 2.1 * math.sin(a), 8.9), (0.5, 0.5, 0.6),
                  rotation=(0, 0, a))
    C.add_cone(bm, (0, 0, 8.6), 2.0, 0.0, 3.2, segments=24, mat_index=1)
    for i in range(4):  # arrow slits (dark stone inserts)
        a = math.radians(-90 + 40 * (i - 1.5))
        C.add_box(bm, (2.0 * math.cos(a), 2.0 * math.sin(a), 4.5 + (i % 2)), (0.12, 0.25, 0.9),
                  rotation=(0, 0, a), mat_index=1)
    tower = C.mesh_object("Castle_Tower", bm, coll, smooth=False)
    tower.location = (-8.5, 0.5, 0.0)
    C.assign_material(tower, brick, stone)
    objs.append(tower)

    # gate: two pillars and a semicircular arch, plus a wooden door
    bm = bmesh.new()
    for sx in (-1, 1):
        C.add_box(bm, (sx * 1.7, -0.15, 1.6), (0.6, 1.4, 3.2))
    arch = []
    for i in range(13):
        a = math.pi * i / 12
        arch.append((1.7 * math.cos(a), -0.15, 3.2 + 1.1 * math.sin(a), 0.3, 0.7))
    C.loft(bm, arch, segments=4, samples_per_seg=2)
    C.add_box(bm, (0.0, 0.1, 1.5), (2.8, 0.15, 3.0), mat_index=1)
    gate = C.mesh_object("Castle_Gate", bm, coll, smooth=False)
    wood = C.principled_material("GateWood", (0.25, 0.14, 0.07), 0.7)
    C.assign_material(gate, stone, wood)
    objs.append(gate)

    bm = bmesh.new()
    bmesh.ops.create_grid(bm, x_segments=2, y_segments=2, size=30.0, calc_uvs=True)
    ground = C.mesh_object("Ground", bm, coll, smooth=False)
    grass = C.principled_material("Grass", (0.16, 0.26, 0.09), 0.9)
    C.assign_material(ground, grass)
    objs.append(ground)

    sun = C.add_light("Sun", "SUN", (10, -10, 12), (0, 0, 0), energy=4.0,
                      color=(1.0, 0.78, 0.55), size=1.5, collection=coll)
    sun.rotation_euler = (math.radians(70), 0.0, math.radians(-40))
    objs.append(sun)
    return objs


def main():
    a = C.script_args()
    out = a["out"]
    C.reset_scene()
    sc = C.setup_scene("BLENDER_EEVEE", 3840, 2160, 50, 1001, 1100, 25)
    sc.eevee.use_gtao = True
    sc.eevee.use_soft_shadows = True
    sc.eevee.use_bloom = True
    C.set_world((0.55, 0.45, 0.38), 0.8)
    brick = brick_material(os.path.join(os.path.dirname(out), "tex"))
    stone = stone_material()
    coll = C.new_collection("Castle_Env")
    objs = build(coll, brick, stone)

    # give the file its location first so the library path can be relative
    os.makedirs(os.path.dirname(out), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=out)
    with bpy.data.libraries.load(a["props"], link=True, relative=True) as (src, dst):
        dst.collections = ["Props"]
    props = dst.collections[0]
    inst = bpy.data.objects.new("Props_Set", None)
    inst.instance_type = "COLLECTION"
    inst.instance_collection = props
    inst.location = (3.0, -3.5, 0.0)
    inst.rotation_euler = (0, 0, math.radians(-20))
    coll.objects.link(inst)

    C.material_previews()
    C.save_blend(out, compress=True, tmpdir=a["tmp"],
                 thumb_view=(objs[:3], (0.55, -1.0, 0.32)))


main()
