"""What the buttons do to the scene, given a file on this machine (main thread only).

Plain bpy.data calls, no operators: no context overrides needed, identical in the UI, in
background mode and across Blender 3.4 - 4.x.
"""

from __future__ import annotations

import os

import bpy


class AddonError(Exception):
    """A user-facing failure (reported in the status bar, never as a traceback)."""


def capture(context: bpy.types.Context) -> dict:
    """Where the result of an asynchronous import should land, recorded when the button is pressed."""
    scene = context.scene
    view_layer = context.view_layer
    active = view_layer.objects.active if view_layer else None
    return {
        "scene": scene.name if scene else None,
        "view_layer": view_layer.name if view_layer else None,
        "active_object": active.name if active else None,
    }


def _scene_and_layer(where: dict) -> tuple[bpy.types.Scene, bpy.types.ViewLayer]:
    scene = bpy.data.scenes.get(where.get("scene") or "") or bpy.context.scene or bpy.data.scenes[0]
    layer = scene.view_layers.get(where.get("view_layer") or "") or scene.view_layers[0]
    return scene, layer


def _target_collection(scene: bpy.types.Scene, layer: bpy.types.ViewLayer) -> bpy.types.Collection:
    """The active collection, unless it cannot take new objects (linked / overridden)."""
    active = layer.active_layer_collection.collection if layer.active_layer_collection else None
    if active is None or active.library is not None or getattr(active, "override_library", None):
        return scene.collection
    return active


def _select_only(layer: bpy.types.ViewLayer, *objects: bpy.types.Object) -> None:
    """Select exactly ``objects`` (the first becomes active), as Blender's own File > Append does."""
    for other in layer.objects:
        if other.select_get(view_layer=layer):
            other.select_set(False, view_layer=layer)
    present = [obj for obj in objects if obj.name in layer.objects]
    for obj in present:
        obj.select_set(True, view_layer=layer)
    if present:
        layer.objects.active = present[0]


# ---------------------------------------------------------------------- .blend


def load_datablock(filepath: str, kind: str, name: str, link: bool, where: dict) -> bpy.types.ID:
    """Append (or link) object/collection ``name`` from ``filepath`` and put it in the scene.

    Appended objects and collections go into the active collection; a linked collection is
    instanced by an empty at the 3D cursor, as File > Link does.
    """
    attr = {"OBJECT": "objects", "COLLECTION": "collections"}.get(kind)
    if attr is None:
        raise AddonError(f"cannot append a {kind!r}; objects and collections only")
    if not name:
        raise AddonError("choose an object or collection first")
    if not os.path.isfile(filepath):
        raise AddonError(f"file not found: {filepath}")
    available: list[str] = []
    try:
        with bpy.data.libraries.load(filepath, link=link, relative=False) as (data_from, data_to):
            available = list(getattr(data_from, attr))
            if name in available:
                setattr(data_to, attr, [name])
    except OSError as exc:
        raise AddonError(f"Blender cannot read {os.path.basename(filepath)}: {exc}") from None
    if name not in available:
        listed = ", ".join(available[:15]) + (" ..." if len(available) > 15 else "") or "none"
        raise AddonError(f"{kind.lower()} {name!r} is not in {os.path.basename(filepath)} (it has: {listed})")
    block = getattr(data_to, attr)[0]
    if block is None:
        raise AddonError(f"Blender could not load {kind.lower()} {name!r} from {os.path.basename(filepath)}")

    scene, layer = _scene_and_layer(where)
    target = _target_collection(scene, layer)
    if kind == "OBJECT":
        if block.name not in target.objects:
            target.objects.link(block)
        layer.update()
        _select_only(layer, block)
        return block
    if link:  # a linked collection cannot be edited: instance it, like File > Link
        empty = bpy.data.objects.new(block.name, None)
        empty.instance_type = "COLLECTION"
        empty.instance_collection = block
        empty.location = scene.cursor.location
        target.objects.link(empty)
        layer.update()
        _select_only(layer, empty)
        return block
    if block.name not in target.children:
        target.children.link(block)
    layer.update()
    _select_only(layer, *block.all_objects)
    return block


# ---------------------------------------------------------------------- images


def _load_image(filepath: str) -> bpy.types.Image:
    try:
        image = bpy.data.images.load(filepath, check_existing=True)
    except RuntimeError as exc:
        raise AddonError(f"Blender cannot read the image {os.path.basename(filepath)}: {exc}") from None
    if image.size[0] == 0 or image.size[1] == 0:
        raise AddonError(f"Blender cannot read the image {os.path.basename(filepath)} (no pixels)")
    return image


def _has_alpha(image: bpy.types.Image) -> bool:
    return image.depth in (32, 64, 128) and image.alpha_mode != "NONE"


def _principled(material: bpy.types.Material) -> bpy.types.Node:
    """The material's Principled BSDF, created and wired to the output when there is none."""
    if not getattr(material, "use_nodes", True):  # always on (deprecated) from Blender 5.0
        material.use_nodes = True
    tree = material.node_tree
    for node in tree.nodes:
        if node.type == "BSDF_PRINCIPLED":
            return node
    bsdf = tree.nodes.new("ShaderNodeBsdfPrincipled")
    output = next((n for n in tree.nodes if n.type == "OUTPUT_MATERIAL"), None)
    if output is None:
        output = tree.nodes.new("ShaderNodeOutputMaterial")
        output.location = (300, 0)
    tree.links.new(bsdf.outputs[0], output.inputs["Surface"])
    return bsdf


def _texture_node(material: bpy.types.Material, image: bpy.types.Image, alpha: bool) -> bpy.types.Node:
    bsdf = _principled(material)
    tree = material.node_tree
    tex = tree.nodes.new("ShaderNodeTexImage")
    tex.image = image
    tex.label = image.name
    tex.location = (bsdf.location.x - 320, bsdf.location.y)
    tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])  # the same name in 3.x and 4.x
    if alpha and "Alpha" in bsdf.inputs:
        tree.links.new(tex.outputs["Alpha"], bsdf.inputs["Alpha"])
        if hasattr(material, "surface_render_method"):  # EEVEE Next (4.2+)
            material.surface_render_method = "DITHERED"
        elif hasattr(material, "blend_method"):  # EEVEE Legacy (3.x - 4.1)
            material.blend_method = "HASHED"
    tree.nodes.active = tex
    return tex


def image_plane(filepath: str, where: dict, height: float = 1.0) -> bpy.types.Object:
    """A plane the image's shape (``height`` tall, standing, facing -Y) at the 3D cursor, textured
    with it: what "Import Images as Planes" makes, built directly so that it works with or without
    that add-on (3.x) or its core replacement (4.2+)."""
    image = _load_image(filepath)
    width = height * image.size[0] / image.size[1]
    x, z = width / 2, height / 2
    mesh = bpy.data.meshes.new(image.name)
    mesh.from_pydata([(-x, 0, -z), (x, 0, -z), (x, 0, z), (-x, 0, z)], [], [(0, 1, 2, 3)])
    uv = mesh.uv_layers.new(name="UVMap")
    for loop, coords in zip(uv.data, ((0, 0), (1, 0), (1, 1), (0, 1))):
        loop.uv = coords
    mesh.update()
    material = bpy.data.materials.new(image.name)
    _texture_node(material, image, _has_alpha(image))
    mesh.materials.append(material)

    scene, layer = _scene_and_layer(where)
    obj = bpy.data.objects.new(os.path.splitext(image.name)[0] or image.name, mesh)
    obj.location = scene.cursor.location
    _target_collection(scene, layer).objects.link(obj)
    layer.update()
    _select_only(layer, obj)
    return obj


def image_texture(filepath: str, where: dict) -> tuple[bpy.types.Material, bpy.types.Node]:
    """An Image Texture node feeding Base Color of the active object's active material (a new
    material when it has none)."""
    _, layer = _scene_and_layer(where)
    obj = bpy.data.objects.get(where.get("active_object") or "") or layer.objects.active
    if obj is None:
        raise AddonError("select an object first: the image goes on its active material")
    if not hasattr(obj.data, "materials"):
        raise AddonError(f"{obj.name} is a {obj.type.lower()}, which has no materials")
    if obj.library is not None or obj.data.library is not None:
        raise AddonError(f"{obj.name} is linked from a library; make it local first")
    image = _load_image(filepath)
    material = obj.active_material
    if material is None:
        material = bpy.data.materials.new(os.path.splitext(image.name)[0] or "Material")
        if len(obj.material_slots) > 0:
            obj.active_material = material
        else:
            obj.data.materials.append(material)
    elif material.library is not None:
        raise AddonError(f"material {material.name} is linked from a library; make it local first")
    return material, _texture_node(material, image, alpha=False)


# ---------------------------------------------------------------------- video


def movie_clip(filepath: str) -> bpy.types.MovieClip:
    """Load the video as a movie clip and show it in any open Movie Clip Editor."""
    try:
        clip = bpy.data.movieclips.load(filepath, check_existing=True)
    except RuntimeError as exc:
        raise AddonError(f"Blender cannot open the video {os.path.basename(filepath)}: {exc}") from None
    for window in getattr(bpy.context.window_manager, "windows", ()):
        for area in window.screen.areas:
            if area.type == "CLIP_EDITOR":
                area.spaces.active.clip = clip
    return clip


def open_externally(filepath: str) -> None:
    """Open with the operating system's default application (not in background mode)."""
    if bpy.app.background:
        raise AddonError(
            "opening in an external player needs Blender's UI (not available in background mode)"
        )
    if not os.path.isfile(filepath):
        raise AddonError(f"file not found: {filepath}")
    bpy.ops.wm.path_open(filepath=filepath)
