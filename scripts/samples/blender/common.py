"""Shared helpers for the sample-library Blender scripts (run inside Blender 3.4+).

Pure bpy/bmesh/mathutils only: Debian's Blender uses the system Python, which
has no numpy.
"""
import math
import os
import sys
import tempfile

import bmesh
import bpy
from mathutils import Matrix, Vector


def script_args():
    """Arguments after `--` as a dict: --key value pairs."""
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    out = {}
    i = 0
    while i < len(argv):
        key = argv[i].lstrip("-")
        out[key] = argv[i + 1] if i + 1 < len(argv) else ""
        i += 2
    return out


def ensure_numpy():
    """Blender's glTF/FBX exporters need numpy. Debian's Blender runs on the
    system Python, which may lack it (package python3-numpy); make_samples.py
    then passes the project venv's site-packages (same Python minor version)
    in SAMPLES_EXTRA_SITE, appended so Blender's own modules win."""
    try:
        import numpy  # noqa: F401
        return
    except ImportError:
        pass
    extra = os.environ.get("SAMPLES_EXTRA_SITE")
    if extra and extra not in sys.path:
        sys.path.append(extra)
    import numpy  # noqa: F401,F811


def log(*a):
    print("[samples]", *a, flush=True)


# --------------------------------------------------------------------------- scene

def reset_scene():
    """Start from the factory startup file with no objects, meshes, lights..."""
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    for coll in (bpy.data.meshes, bpy.data.materials, bpy.data.lights,
                 bpy.data.cameras, bpy.data.images, bpy.data.textures):
        for idb in list(coll):
            if idb.users == 0:
                coll.remove(idb)
    return bpy.context.scene


def setup_scene(engine, res_x, res_y, pct=100, frame_start=1, frame_end=250, fps=24,
                samples=16):
    sc = bpy.context.scene
    sc.render.engine = engine
    sc.render.resolution_x = res_x
    sc.render.resolution_y = res_y
    sc.render.resolution_percentage = pct
    sc.frame_start = frame_start
    sc.frame_end = frame_end
    sc.frame_current = frame_start
    sc.render.fps = fps
    sc.render.fps_base = 1.0
    sc.cycles.device = "CPU"
    sc.cycles.samples = samples
    sc.cycles.preview_samples = 16
    sc.cycles.use_denoising = False
    sc.cycles.use_adaptive_sampling = False
    sc.cycles.seed = 0
    sc.cycles.sample_clamp_indirect = 2.0
    sc.render.use_persistent_data = True
    # solid-mode look, used by Workbench renders and the file thumbnail
    sc.display.shading.light = "STUDIO"
    sc.display.shading.color_type = "MATERIAL"
    return sc


def set_world(color=(0.05, 0.06, 0.08), strength=1.0, name="World"):
    sc = bpy.context.scene
    world = sc.world or bpy.data.worlds.new(name)
    world.name = name
    sc.world = world
    world.use_nodes = True
    bg = world.node_tree.nodes.get("Background")
    bg.inputs["Color"].default_value = (*color, 1.0)
    bg.inputs["Strength"].default_value = strength
    world.color = color
    return world


def look_at(obj, target):
    direction = Vector(target) - obj.location
    obj.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()


def add_camera(name, location, target, lens=50.0, collection=None):
    cam_data = bpy.data.cameras.new(name)
    cam_data.lens = lens
    cam_data.clip_end = 500.0
    cam = bpy.data.objects.new(name, cam_data)
    (collection or bpy.context.scene.collection).objects.link(cam)
    cam.location = location
    look_at(cam, target)
    bpy.context.scene.camera = cam
    return cam


def add_light(name, kind, location, target=(0, 0, 0), energy=1000.0, color=(1, 1, 1),
              size=1.0, collection=None):
    data = bpy.data.lights.new(name, kind)
    data.energy = energy
    data.color = color
    if kind == "AREA":
        data.size = size
    if kind == "SUN":
        data.angle = math.radians(size)
    light = bpy.data.objects.new(name, data)
    (collection or bpy.context.scene.collection).objects.link(light)
    light.location = location
    look_at(light, target)
    return light


def new_collection(name, parent=None):
    coll = bpy.data.collections.new(name)
    (parent or bpy.context.scene.collection).children.link(coll)
    return coll


# --------------------------------------------------------------------------- meshes

def mesh_object(name, bm, collection=None, smooth=True):
    me = bpy.data.meshes.new(name)
    bm.to_mesh(me)
    bm.free()
    if smooth:
        for p in me.polygons:
            p.use_smooth = True
    obj = bpy.data.objects.new(name, me)
    (collection or bpy.context.scene.collection).objects.link(obj)
    return obj


def _catmull(points, samples_per_seg):
    """Catmull-Rom interpolation of a list of tuples (any dimension)."""
    pts = [points[0]] + list(points) + [points[-1]]
    out = []
    for i in range(1, len(pts) - 2):
        p0, p1, p2, p3 = pts[i - 1], pts[i], pts[i + 1], pts[i + 2]
        for s in range(samples_per_seg):
            t = s / samples_per_seg
            t2, t3 = t * t, t * t * t
            out.append(tuple(
                0.5 * ((2 * b) + (-a + c) * t + (2 * a - 5 * b + 4 * c - d) * t2
                       + (-a + 3 * b - 3 * c + d) * t3)
                for a, b, c, d in zip(p0, p1, p2, p3)))
    out.append(tuple(points[-1]))
    return out


def loft(bm, spine, segments=16, samples_per_seg=4, cap=True, mat_index=0, uv_layer=None,
         v_repeat=1.0):
    """Add a tube along `spine` [(x, y, z, rx, rz), ...] to bmesh `bm`.

    Rings are perpendicular to the spine; rx/rz are the radii across / up.
    Returns the list of created vertices.
    """
    pts = _catmull(spine, samples_per_seg)
    rings = []
    n = len(pts)
    for i, p in enumerate(pts):
        c = Vector(p[:3])
        nxt = Vector(pts[min(i + 1, n - 1)][:3])
        prv = Vector(pts[max(i - 1, 0)][:3])
        tangent = (nxt - prv).normalized()
        side = tangent.cross(Vector((0, 0, 1)))
        if side.length < 1e-4:
            side = Vector((1, 0, 0))
        side.normalize()
        up = side.cross(tangent).normalized()
        ring = []
        for s in range(segments):
            a = 2 * math.pi * s / segments
            pos = c + side * (math.cos(a) * p[3]) + up * (math.sin(a) * p[4])
            ring.append(bm.verts.new(pos))
        rings.append(ring)
    uv = uv_layer or bm.loops.layers.uv.verify()
    faces = []
    for i in range(n - 1):
        for s in range(segments):
            s2 = (s + 1) % segments
            f = bm.faces.new((rings[i][s], rings[i][s2], rings[i + 1][s2], rings[i + 1][s]))
            f.material_index = mat_index
            us = (s / segments, (s + 1) / segments, (s + 1) / segments, s / segments)
            vs = (i / (n - 1), i / (n - 1), (i + 1) / (n - 1), (i + 1) / (n - 1))
            for loop, u, v in zip(f.loops, us, vs):
                loop[uv].uv = (u, v * v_repeat)
            faces.append(f)
    if cap:
        for ring, rev in ((rings[0], True), (rings[-1], False)):
            center = sum((v.co for v in ring), Vector()) / len(ring)
            cv = bm.verts.new(center)
            for s in range(segments):
                a, b = ring[s], ring[(s + 1) % segments]
                f = bm.faces.new((cv, b, a) if rev else (cv, a, b))
                f.material_index = mat_index
                for loop in f.loops:
                    loop[uv].uv = (0.5, 0.0 if rev else v_repeat)
    bm.normal_update()
    return [v for r in rings for v in r]


def add_sphere(bm, location, radius, scale=(1, 1, 1), segments=16, rings=8, mat_index=0):
    m = Matrix.Translation(location) @ Matrix.Diagonal((*scale, 1.0))
    res = bmesh.ops.create_uvsphere(bm, u_segments=segments, v_segments=rings, radius=radius,
                                    matrix=m, calc_uvs=True)
    for f in {f for v in res["verts"] for f in v.link_faces}:
        f.material_index = mat_index
    return res["verts"]


def add_cone(bm, location, r1, r2, depth, rotation=(0, 0, 0), segments=12, mat_index=0):
    from mathutils import Euler
    m = Matrix.Translation(location) @ Euler(rotation).to_matrix().to_4x4() \
        @ Matrix.Translation((0, 0, depth / 2))
    res = bmesh.ops.create_cone(bm, cap_ends=True, segments=segments, radius1=r1, radius2=r2,
                                depth=depth, matrix=m, calc_uvs=True)
    for f in {f for v in res["verts"] for f in v.link_faces}:
        f.material_index = mat_index
    return res["verts"]


def add_box(bm, location, size, rotation=(0, 0, 0), mat_index=0):
    from mathutils import Euler
    m = Matrix.Translation(location) @ Euler(rotation).to_matrix().to_4x4() \
        @ Matrix.Diagonal((size[0], size[1], size[2], 1.0))
    res = bmesh.ops.create_cube(bm, size=1.0, matrix=m, calc_uvs=True)
    for f in {f for v in res["verts"] for f in v.link_faces}:
        f.material_index = mat_index
    return res["verts"]


def add_subsurf(obj, levels=1, render_levels=2):
    mod = obj.modifiers.new("Subdivision", "SUBSURF")
    mod.levels = levels
    mod.render_levels = render_levels
    return mod


# --------------------------------------------------------------------------- materials

def principled_material(name, color=(0.8, 0.8, 0.8), roughness=0.5, metallic=0.0,
                        emission=None, emission_strength=0.0):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Metallic"].default_value = metallic
    if emission is not None:
        bsdf.inputs["Emission"].default_value = (*emission, 1.0)
        bsdf.inputs["Emission Strength"].default_value = emission_strength
    mat.diffuse_color = (*color, 1.0)  # viewport / workbench colour
    mat.roughness = roughness
    return mat


def image_node(mat, image_path, label, non_color=False, location=(-500, 200),
               check_existing=True):
    """Add an Image Texture node loading `image_path` (absolute path; made
    relative later by make_paths_relative)."""
    nt = mat.node_tree
    node = nt.nodes.new("ShaderNodeTexImage")
    node.label = label
    node.name = label
    node.location = location
    img = bpy.data.images.load(image_path, check_existing=check_existing)
    if non_color:
        img.colorspace_settings.name = "Non-Color"
    node.image = img
    return node


def missing_image_node(mat, rel_path, label, location=(-500, -200)):
    """An Image Texture node pointing at a file that does not exist."""
    nt = mat.node_tree
    node = nt.nodes.new("ShaderNodeTexImage")
    node.label = label
    node.name = label
    node.location = location
    img = bpy.data.images.new(os.path.basename(rel_path), 16, 16)
    img.source = "FILE"
    img.filepath = rel_path
    node.image = img
    return node


def uv_mapping(mat, scale=(1, 1, 1), location=(-900, 200)):
    nt = mat.node_tree
    tc = nt.nodes.new("ShaderNodeTexCoord")
    tc.location = (location[0] - 200, location[1])
    mp = nt.nodes.new("ShaderNodeMapping")
    mp.location = location
    mp.inputs["Scale"].default_value = scale
    nt.links.new(tc.outputs["UV"], mp.inputs["Vector"])
    return mp


def assign_material(obj, *mats):
    for m in mats:
        obj.data.materials.append(m)


# --------------------------------------------------------------------------- previews

def render_to_image(filepath, engine="BLENDER_WORKBENCH", size=(128, 128), samples=8,
                    transparent=True):
    """Render the current scene camera to `filepath` (PNG) and restore settings."""
    sc = bpy.context.scene
    r = sc.render
    saved = (r.engine, r.resolution_x, r.resolution_y, r.resolution_percentage,
             r.film_transparent, r.filepath, r.image_settings.file_format,
             r.image_settings.color_mode, sc.cycles.samples)
    r.engine = engine
    r.resolution_x, r.resolution_y = size
    r.resolution_percentage = 100
    r.film_transparent = transparent
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGBA"
    sc.cycles.samples = samples
    r.filepath = filepath
    bpy.ops.render.render(write_still=True)
    (r.engine, r.resolution_x, r.resolution_y, r.resolution_percentage,
     r.film_transparent, r.filepath, r.image_settings.file_format,
     r.image_settings.color_mode, sc.cycles.samples) = saved


def set_preview_from_file(idb, png_path):
    """Embed the pixels of `png_path` as the data-block preview of `idb`."""
    img = bpy.data.images.load(png_path, check_existing=False)
    w, h = img.size
    px = list(img.pixels[:])
    prev = idb.preview_ensure()
    prev.image_size = (w, h)
    prev.image_pixels_float = px
    bpy.data.images.remove(img)


def frame_camera(cam, objects, direction=(1.0, -1.3, 0.8), margin=1.12):
    """Place `cam` along `direction` so that `objects` fill the frame."""
    dg = bpy.context.evaluated_depsgraph_get()
    coords = []
    for o in objects:
        for corner in o.bound_box:
            coords.extend(o.matrix_world @ Vector(corner))
    d = Vector(direction).normalized()
    cam.rotation_euler = (-d).to_track_quat("-Z", "Y").to_euler()
    dg.update()
    loc, _scale = cam.camera_fit_coords(dg, coords)
    center = sum((Vector(coords[i:i + 3]) for i in range(0, len(coords), 3)), Vector()) \
        / (len(coords) / 3)
    cam.location = center + (Vector(loc) - center) * margin


def object_previews(objects, tmpdir, size=(128, 128)):
    """Give each object a data-block preview like Blender's own object previews:
    a Workbench render of the object alone, framed by a temporary camera."""
    os.makedirs(tmpdir, exist_ok=True)
    sc = bpy.context.scene
    all_objs = [o for o in sc.objects if o.type not in {"CAMERA"}]
    hidden = {o.name: o.hide_render for o in all_objs}
    saved_cam = sc.camera
    cam = bpy.data.objects.new("_preview_cam", bpy.data.cameras.new("_preview_cam"))
    cam.data.lens = 50
    sc.collection.objects.link(cam)
    sc.camera = cam
    for obj in objects:
        for o in all_objs:
            o.hide_render = o is not obj
        frame_camera(cam, [obj])
        path = os.path.join(tmpdir, "preview_%s.png" % obj.name)
        render_to_image(path, size=size)
        set_preview_from_file(obj, path)
    for o in all_objs:
        o.hide_render = hidden[o.name]
    sc.camera = saved_cam
    cam_data = cam.data
    bpy.data.objects.remove(cam)
    bpy.data.cameras.remove(cam_data)


def material_previews():
    """Render material/world/etc. previews synchronously (works headless).

    Cycles preview renders crash Blender 3.4 in background mode, so the
    previews are rendered with EEVEE (GL via Mesa) and the engine restored."""
    sc = bpy.context.scene
    engine = sc.render.engine
    sc.render.engine = "BLENDER_EEVEE"
    bpy.ops.wm.previews_ensure()
    sc.render.engine = engine


# --------------------------------------------------------------------------- saving

THUMB_SIZE = 128  # BLEN_THUMB_SIZE


def render_file_thumbnail(tmpdir, engine="BLENDER_WORKBENCH", samples=8):
    """Render the scene camera into a THUMB_SIZE square RGBA buffer, letterboxed
    like Blender's own camera thumbnails. Returns (w, h, bytes) bottom-up rows."""
    os.makedirs(tmpdir, exist_ok=True)
    sc = bpy.context.scene
    rx = sc.render.resolution_x * sc.render.pixel_aspect_x
    ry = sc.render.resolution_y * sc.render.pixel_aspect_y
    if rx >= ry:
        w, h = THUMB_SIZE, max(1, round(THUMB_SIZE * ry / rx))
    else:
        w, h = max(1, round(THUMB_SIZE * rx / ry)), THUMB_SIZE
    path = os.path.join(tmpdir, "file_thumb.png")
    render_to_image(path, engine=engine, size=(w, h), samples=samples, transparent=False)
    img = bpy.data.images.load(path, check_existing=False)
    px = img.pixels[:]
    bpy.data.images.remove(img)
    buf = bytearray(THUMB_SIZE * THUMB_SIZE * 4)  # transparent black
    ox, oy = (THUMB_SIZE - w) // 2, (THUMB_SIZE - h) // 2
    for y in range(h):
        row = px[y * w * 4:(y + 1) * w * 4]
        start = ((y + oy) * THUMB_SIZE + ox) * 4
        buf[start:start + w * 4] = bytes(
            int(max(0.0, min(1.0, v)) * 255 + 0.5) for v in row)
    return THUMB_SIZE, THUMB_SIZE, bytes(buf)


def write_thumbnail_block(filepath, thumb):
    """Put a file thumbnail ("TEST" block) into an *uncompressed* .blend.

    Blender only draws the camera thumbnail when saving from the UI; in
    background mode it writes whatever Main.blen_thumb holds (the factory
    startup's thumbnail after read_homefile, or nothing). So we write the
    block ourselves, replacing an existing TEST block or inserting one before
    GLOB, exactly where Blender puts it. Blocks carry no file offsets, so
    splicing is safe."""
    import struct
    w, h, pixels = thumb
    with open(filepath, "rb") as f:
        data = f.read()
    head = data[:12]
    if not head.startswith(b"BLENDER"):
        raise RuntimeError("not an uncompressed .blend: %s" % filepath)
    ptr = 8 if head[7:8] == b"-" else 4
    endian = "<" if head[8:9] == b"v" else ">"
    bhead_len = 16 + ptr
    payload = struct.pack(endian + "ii", w, h) + pixels
    block = b"TEST" + struct.pack(endian + "i", len(payload)) + b"\0" * ptr \
        + struct.pack(endian + "ii", 0, 1) + payload
    pos = 12
    while pos < len(data):
        code = data[pos:pos + 4]
        (size,) = struct.unpack(endian + "i", data[pos + 4:pos + 8])
        end = pos + bhead_len + size
        if code == b"TEST":
            data = data[:pos] + block + data[end:]
            break
        if code in (b"GLOB", b"ENDB"):
            data = data[:pos] + block + data[pos:]
            break
        pos = end
    with open(filepath, "wb") as f:
        f.write(data)


def temp_camera(objects, direction, margin=1.1, lens=40):
    """A throw-away camera framing `objects` (for files without a camera)."""
    sc = bpy.context.scene
    cam = bpy.data.objects.new("_thumb_cam", bpy.data.cameras.new("_thumb_cam"))
    cam.data.lens = lens
    cam.data.clip_end = 500.0
    sc.collection.objects.link(cam)
    sc.camera = cam
    frame_camera(cam, objects, direction=direction, margin=margin)
    return cam


def remove_object(obj):
    data = obj.data
    bpy.data.objects.remove(obj)
    if data is not None and data.users == 0:
        if isinstance(data, bpy.types.Camera):
            bpy.data.cameras.remove(data)


def save_blend(filepath, compress=False, tmpdir=None, thumbnail=True, thumb_view=None):
    """Save with `//`-relative paths and an embedded file thumbnail.

    Saves uncompressed first (the first save gives the file a location so
    absolute paths can be made relative to it), writes the thumbnail block,
    and for compressed files re-opens the result and saves it compressed:
    Blender keeps the thumbnail it read from the file (Main.blen_thumb).
    Note: with compress=True the current Main is replaced by the re-opened one.
    """
    os.makedirs(os.path.dirname(filepath), exist_ok=True)
    prefs = bpy.context.preferences.filepaths
    prefs.save_version = 0  # no .blend1 backups
    thumb = None
    if thumbnail:
        cam = None
        if bpy.context.scene.camera is None:
            # thumb_view = (objects, direction): frame them with a temporary camera
            objects, direction = thumb_view
            cam = temp_camera(objects, direction)
        thumb = render_file_thumbnail(tmpdir or tempfile.mkdtemp())
        if cam is not None:
            remove_object(cam)
            bpy.context.scene.camera = None
    rr = bpy.data.images.get("Render Result")  # left over from thumbnail/preview renders
    if rr is not None:
        bpy.data.images.remove(rr)
    bpy.ops.wm.save_as_mainfile(filepath=filepath, compress=False)
    bpy.ops.file.make_paths_relative()
    bpy.ops.wm.save_as_mainfile(filepath=filepath, compress=False)
    if thumb:
        write_thumbnail_block(filepath, thumb)
    if compress:
        bpy.ops.wm.open_mainfile(filepath=filepath, load_ui=False)
        bpy.context.preferences.filepaths.save_version = 0
        bpy.ops.wm.save_as_mainfile(filepath=filepath, compress=True)
    for ext in (".blend1", ".blend2"):
        bak = filepath[:-6] + ext
        if os.path.exists(bak):
            os.remove(bak)
    log("saved", filepath)
