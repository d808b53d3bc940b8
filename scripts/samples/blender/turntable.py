"""Render a turntable image sequence of an existing .blend (nothing is saved).

Args:
  --blend FILE       scene to open
  --outdir DIR       frames are written as DIR/frame_####.png
  --frames N         number of frames for one full turn
  --size WxH         resolution
  --samples N        Cycles samples
  --rotate NAME      rotate this object about Z (turntable), or
  --orbit X,Y,Z      orbit the scene camera around this point
  --view X,Y,Z       view direction for a framing camera if the file has none
  --ground 1         add a grey floor + backdrop light (for asset turntables)
"""
import math
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the repo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bpy  # noqa: E402

import common as C  # noqa: E402


def main():
    a = C.script_args()
    bpy.ops.wm.open_mainfile(filepath=a["blend"], load_ui=False)
    sc = bpy.context.scene
    n = int(a["frames"])
    w, h = (int(v) for v in a["size"].split("x"))
    sc.render.engine = "CYCLES"
    sc.cycles.device = "CPU"
    sc.cycles.samples = int(a.get("samples", 8))
    sc.cycles.use_denoising = False
    sc.cycles.use_adaptive_sampling = False
    sc.cycles.max_bounces = 4
    sc.cycles.seed = 0
    sc.cycles.sample_clamp_indirect = 2.0
    sc.render.use_persistent_data = True
    sc.render.resolution_x, sc.render.resolution_y = w, h
    sc.render.resolution_percentage = 100
    sc.render.film_transparent = False
    sc.render.image_settings.file_format = "PNG"
    sc.render.image_settings.color_mode = "RGB"
    sc.frame_start, sc.frame_end = 1, n

    if a.get("ground") == "1":
        import bmesh
        bm = bmesh.new()
        bmesh.ops.create_circle(bm, cap_ends=True, radius=9.0, segments=48)
        floor = C.mesh_object("TT_Floor", bm, smooth=False)
        floor.data.materials.append(C.principled_material("TT_Floor", (0.16, 0.16, 0.17), 0.8))
        C.add_light("TT_Rim", "AREA", (-5.0, 5.0, 5.0), (0, 0, 1.5), energy=800, size=4.0,
                    color=(0.8, 0.88, 1.0))

    if a.get("rotate"):
        obj = bpy.data.objects[a["rotate"]]
        start = obj.rotation_euler.z
        for f, angle in ((1, 0.0), (n + 1, 2 * math.pi)):
            obj.rotation_euler.z = start + angle
            obj.keyframe_insert("rotation_euler", index=2, frame=f)
    else:
        px, py, pz = (float(v) for v in a["orbit"].split(","))
        pivot = bpy.data.objects.new("TT_Pivot", None)
        sc.collection.objects.link(pivot)
        pivot.location = (px, py, pz)
        cam = sc.camera
        if cam is None:  # e.g. set files without a camera: frame the meshes
            meshes = [o for o in sc.objects if o.type == "MESH" and o.name != "Ground"]
            cam = C.temp_camera(meshes, tuple(float(v) for v in a["view"].split(",")),
                                margin=1.05, lens=35)
        bpy.context.view_layer.update()
        mw = cam.matrix_world.copy()
        cam.parent = pivot
        cam.matrix_world = mw
        for f, angle in ((1, 0.0), (n + 1, 2 * math.pi)):
            pivot.rotation_euler.z = angle
            pivot.keyframe_insert("rotation_euler", index=2, frame=f)
    for ob in bpy.data.objects:
        if ob.name in (a.get("rotate"), "TT_Pivot") and ob.animation_data:
            for fc in ob.animation_data.action.fcurves:
                for kp in fc.keyframe_points:
                    kp.interpolation = "LINEAR"

    os.makedirs(a["outdir"], exist_ok=True)
    t0 = time.time()
    for f in range(1, n + 1):
        sc.frame_set(f)
        sc.render.filepath = os.path.join(a["outdir"], "frame_%04d.png" % f)
        bpy.ops.render.render(write_still=True)
    C.log("turntable: %d frames %dx%d in %.1fs" % (n, w, h, time.time() - t0))


main()
