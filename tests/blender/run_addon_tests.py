"""End-to-end checks of the cgchat Blender add-on, run INSIDE Blender against a live cgchat server:

    BLENDER_USER_SCRIPTS=$(mktemp -d) BLENDER_USER_CONFIG=$(mktemp -d) \
    blender -b --factory-startup --python-exit-code 1 --python tests/blender/run_addon_tests.py -- \
        --server http://127.0.0.1:8000 --zip dist/cgchat_blender.zip

(tests/test_blender_addon.py does exactly this against a server it starts.) Without arguments the
server is $CGCHAT_SERVER or http://127.0.0.1:8000 (`make serve`) and the zip is built afresh.

Installs the add-on from the zip (into BLENDER_USER_SCRIPTS: point it at a temporary folder so that
nothing reaches this machine's Blender configuration; without it the add-on is removed again at the
end), then searches, appends/links from a sample .blend, imports images as a plane and as a texture,
opens videos as movie clips, and checks that errors are reported (status bar / operator reports),
never raised as tracebacks. The server must have the repository's samples/ indexed. Exits 0 only
when every check passed, non-zero otherwise (also on any exception).

Background mode has no event loop, so bpy.app.timers never fire while this script runs: after
each operator the script drives the add-on's job runner itself (jobs.wait_all()), which runs the
same main-thread completions the timer runs in the UI.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import sys
import tempfile
import time
import traceback
from types import SimpleNamespace

import bpy

ADDON = "cgchat_blender"
PASSED: list[str] = []
FAILED: list[str] = []


def check(name: str, condition: object, detail: object = "") -> bool:
    if condition:
        PASSED.append(name)
        print(f"PASS {name}")
    else:
        FAILED.append(name)
        print(f"FAIL {name}: {detail}")
    return bool(condition)


def step(function):
    """Run one group of checks; an exception fails it (and the run) but not the remaining groups."""
    name = function.__name__
    print(f"--- {name}")
    try:
        function()
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        check(f"{name} raised no exception", False, traceback.format_exc().strip().splitlines()[-1])


def parse_args() -> argparse.Namespace:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="run_addon_tests.py")
    parser.add_argument(
        "--server",
        default=os.environ.get("CGCHAT_SERVER", "http://127.0.0.1:8000"),
        help="base URL of a cgchat server with samples/ indexed (default $CGCHAT_SERVER or :8000)",
    )
    parser.add_argument(
        "--zip", default="", help="the add-on zip (default: built by blender_addon/build_zip.py)"
    )
    parser.add_argument("--cache", default="", help="download folder (default: a new temporary one)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each job")
    return parser.parse_args(argv)


ARGS = SimpleNamespace()
CTX = SimpleNamespace(state=None, prefs=None, jobs=None, ui=None, previews=None, ids={})


# ---------------------------------------------------------------------- helpers


def wait() -> bool:
    return check("background jobs finished in time", CTX.jobs.wait_all(ARGS.timeout), "timed out")


def status() -> tuple[str, str]:
    return CTX.state.status, CTX.state.status_level


def search(query: str, asset_type: str = "ALL", mode: str = "hybrid") -> list:
    CTX.state.query, CTX.state.asset_type, CTX.state.mode = query, asset_type, mode
    assert bpy.ops.cgchat.search() == {"FINISHED"}
    wait()
    return list(CTX.state.results)


def result_named(results: list, name: str):
    found = [r for r in results if r.name == name]
    check(f"search found {name}", found, [r.name for r in results])
    return found[0] if found else None


def expect_error(label: str, call, fragment: str) -> None:
    """A synchronous failure: the operator reports an ERROR (bpy.ops turns that into RuntimeError
    for a Python caller; a user sees it in the status bar) and the status says why."""
    try:
        outcome = call()
    except RuntimeError as exc:
        outcome = f"RuntimeError: {exc}"
    text, level = status()
    check(
        f"{label}: reported as an error mentioning {fragment!r}",
        level == "ERROR" and fragment in text,
        f"outcome={outcome!r} status={level}: {text!r}",
    )


def in_scene(obj) -> bool:
    scene = bpy.context.scene
    return scene.objects.get(obj.name) == obj and any(
        obj.name in c.objects for c in [scene.collection, *scene.collection.children_recursive]
    )


def sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def base_color_image(material) -> object:
    """The image of the Image Texture node linked into the Principled BSDF's Base Color."""
    for link in material.node_tree.links:
        if (
            link.to_node.type == "BSDF_PRINCIPLED"
            and link.to_socket.name == "Base Color"
            and link.from_node.type == "TEX_IMAGE"
        ):
            return link.from_node.image
    return None


# ---------------------------------------------------------------------- a layout that checks draw code

UILAYOUT_PROPS = set(bpy.types.UILayout.bl_rna.properties.keys())
ICONS = set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())


class FakeLayout:
    """Stands in for UILayout (there is none in background mode): every call is checked against RNA
    (property names, operator ids and their properties, icon names) and recorded."""

    def __init__(self, log: list) -> None:
        object.__setattr__(self, "log", log)

    def __setattr__(self, name: str, value: object) -> None:
        assert name in UILAYOUT_PROPS, f"UILayout has no attribute {name!r}"

    def _child(self, *args, **kwargs) -> FakeLayout:
        return FakeLayout(self.log)

    row = column = box = split = column_flow = grid_flow = _child

    def _icon(self, kwargs: dict) -> None:
        icon = kwargs.get("icon")
        assert icon is None or icon in ICONS, f"unknown icon {icon!r}"
        assert isinstance(kwargs.get("icon_value", 0), int)

    def label(self, text: str = "", **kwargs) -> None:
        self._icon(kwargs)
        self.log.append(("label", text))

    def separator(self, **kwargs) -> None:
        pass

    def prop(self, data, name: str, **kwargs) -> None:
        data = getattr(data, "_wrapped", data)
        assert name in data.bl_rna.properties, f"{data.bl_rna.identifier} has no property {name!r}"
        self._icon(kwargs)
        self.log.append(("prop", name))

    def operator(self, idname: str, **kwargs) -> object:
        module, name = idname.split(".")
        op = getattr(getattr(bpy.ops, module), name)
        rna = op.get_rna_type()  # raises for an unknown operator
        self._icon(kwargs)
        self.log.append(("operator", idname))
        return FakeOperatorProperties(rna, self.log, idname)

    def template_icon(self, icon_value: int, scale: float = 1.0) -> None:
        assert isinstance(icon_value, int) and icon_value > 0
        self.log.append(("template_icon", icon_value))

    def template_list(
        self, list_type, list_id, data, propname, active_data, active_propname, **kwargs
    ) -> None:
        ui_list = getattr(bpy.types, list_type)
        assert propname in data.bl_rna.properties and active_propname in active_data.bl_rna.properties
        for index, item in enumerate(getattr(data, propname)):
            for layout_type in ("DEFAULT", "GRID"):
                ui_list.draw_item(
                    SimpleNamespace(layout_type=layout_type),
                    bpy.context,
                    FakeLayout(self.log),
                    data,
                    item,
                    0,
                    active_data,
                    active_propname,
                    index,
                    0,
                )
        self.log.append(("template_list", list_type))


class FakeOperatorProperties:
    def __init__(self, rna, log: list, idname: str) -> None:
        object.__setattr__(self, "rna", rna)
        object.__setattr__(self, "log", log)
        object.__setattr__(self, "idname", idname)

    def __setattr__(self, name: str, value: object) -> None:
        prop = self.rna.properties.get(name)
        assert prop is not None, f"{self.idname} has no property {name!r}"
        if prop.type == "ENUM":
            assert value in prop.enum_items, f"{self.idname}.{name}: bad value {value!r}"
        self.log.append(("set", f"{self.idname}.{name}={value}"))


class Wrapped:
    """``self`` for a draw method: the real RNA object plus a fake ``layout``."""

    def __init__(self, wrapped, layout: FakeLayout) -> None:
        self.__dict__["_wrapped"] = wrapped
        self.__dict__["layout"] = layout

    def __getattr__(self, name: str) -> object:
        return getattr(self._wrapped, name)


def draw_log(draw, owner=None) -> list:
    log: list = []
    self = Wrapped(owner, FakeLayout(log)) if owner is not None else SimpleNamespace(layout=FakeLayout(log))
    draw(self, bpy.context)
    return log


# ---------------------------------------------------------------------- the checks


def install_and_enable() -> None:
    scripts = bpy.utils.user_resource("SCRIPTS")
    check(
        "BLENDER_USER_SCRIPTS isolates the install",
        not os.environ.get("BLENDER_USER_SCRIPTS")
        or os.path.realpath(scripts) == os.path.realpath(os.environ["BLENDER_USER_SCRIPTS"]),
        scripts,
    )
    assert bpy.ops.preferences.addon_install(filepath=os.path.abspath(ARGS.zip), overwrite=True) == {
        "FINISHED"
    }
    assert bpy.ops.preferences.addon_enable(module=ADDON) == {"FINISHED"}
    import addon_utils

    check("add-on installed and enabled", addon_utils.check(ADDON) == (True, True), addon_utils.check(ADDON))
    module = sys.modules[ADDON]
    check(
        "installed under the user scripts folder",
        os.path.realpath(module.__file__).startswith(os.path.realpath(scripts)),
        module.__file__,
    )
    check("bl_info: Blender 3.4 minimum", tuple(module.bl_info["blender"]) == (3, 4, 0), module.bl_info)
    from cgchat_blender import jobs, previews, ui

    CTX.jobs, CTX.ui, CTX.previews = jobs, ui, previews
    CTX.state = bpy.context.window_manager.cgchat
    CTX.prefs = bpy.context.preferences.addons[ADDON].preferences
    check("client module has no bpy", "bpy" not in vars(sys.modules[f"{ADDON}.client"]))


def preferences() -> None:
    prefs = CTX.prefs
    check("default server URL", prefs.server_url == "http://127.0.0.1:8000", prefs.server_url)
    check("token is a password field", prefs.bl_rna.properties["token"].subtype == "PASSWORD")
    prefs.server_url = ARGS.server
    prefs.token = "sent-but-unchecked"  # the test server runs AUTH_MODE=off
    prefs.cache_dir = ARGS.cache
    prefs.prefer_local_files = True
    log = draw_log(type(prefs).draw, prefs)
    check("preferences draw", ("prop", "server_url") in log and ("prop", "token") in log, log)


def ui_registered() -> None:
    panel = bpy.types.VIEW3D_PT_cgchat_search
    check(
        "sidebar panel in the 3D viewport, tab cgchat",
        (panel.bl_space_type, panel.bl_region_type, panel.bl_category) == ("VIEW_3D", "UI", "cgchat"),
    )
    log = draw_log(panel.draw)
    check("panel draws (empty)", ("operator", "cgchat.search") in log and ("prop", "query") in log, log)


def search_and_previews() -> None:
    state = CTX.state
    state.query, state.asset_type, state.mode, state.limit = "props library", "ALL", "hybrid", 10
    started = time.monotonic()
    assert bpy.ops.cgchat.search() == {"FINISHED"}
    returned_in = time.monotonic() - started
    check(
        "search operator returns at once (network in a thread)",
        state.busy and len(state.results) == 0,
        f"busy={state.busy} results={len(state.results)} in {returned_in:.3f}s",
    )
    check("a bpy.app.timers poller is registered", bpy.app.timers.is_registered(CTX.jobs.tick))
    check("status says it is searching", "Searching" in state.status, state.status)
    job = CTX.jobs._jobs[0]
    job.finished.wait(ARGS.timeout)
    check(
        "the timer callback completes the job and asks to be called again for previews",
        CTX.jobs.tick() is not None and len(state.results) > 0,
        state.status,
    )
    wait()
    check("timer callback unregisters itself when idle", CTX.jobs.tick() is None)
    results = list(state.results)
    check("search returned results", len(results) >= 3, state.status)
    check("not busy after the search", not state.busy)
    top = results[0]
    check(
        "top result is the props library .blend",
        top.name == "props_library_v001.blend" and top.asset_type == "blend",
        [r.name for r in results],
    )
    CTX.ids["props"] = top.asset_id
    check("status counts the results", state.status.startswith(f"{len(results)} result"), state.status)
    blocks = top.datablock_list()
    check(
        "objects and collections listed from the server's .blend metadata",
        ("OBJECT", "Barrel") in blocks and ("COLLECTION", "Props") in blocks,
        blocks,
    )
    from cgchat_blender import properties

    state.active = 0
    items = [item[0] for item in properties._datablock_items(state, bpy.context)]
    check(
        "datablock choice offers the file's objects and collections",
        sorted(items) == ["COLLECTION:Props", "OBJECT:Barrel", "OBJECT:Crate", "OBJECT:Lantern"],
        items,
    )
    state.datablock = "OBJECT:Crate"
    check("datablock choice can be set", state.datablock == "OBJECT:Crate", state.datablock)
    base = CTX.prefs.server_url
    check("preview icon loaded for the .blend", CTX.previews.has(base, top.asset_id))
    thumbs = os.path.join(ARGS.cache, "thumbs")
    files = [f for _, _, names in os.walk(thumbs) for f in names]
    check(
        "thumbnails downloaded to the cache folder",
        any(f.startswith(f"{top.asset_id}.") for f in files),
        files,
    )
    log = draw_log(bpy.types.VIEW3D_PT_cgchat_search.draw)
    check(
        "panel draws the results list",
        ("template_list", "CGCHAT_UL_results") in log and ("label", "props_library_v001.blend") in log,
        log,
    )
    log = draw_log(bpy.types.VIEW3D_PT_cgchat_result.draw)
    check(
        "result panel offers append and link",
        ("operator", "cgchat.append") in log
        and ("set", "cgchat.append.link=True") in log
        and ("prop", "datablock") in log,
        log,
    )


def append_object() -> None:
    before = set(bpy.data.objects.keys())
    assert bpy.ops.cgchat.append(asset_id=CTX.ids["props"], kind="OBJECT", datablock="Barrel") == {"FINISHED"}
    new = [bpy.data.objects[n] for n in set(bpy.data.objects.keys()) - before]
    barrel = next((o for o in new if o.name.startswith("Barrel")), None)
    check("appended object Barrel is in bpy.data.objects", barrel is not None, [o.name for o in new])
    if barrel is not None:
        check("Barrel is local (appended, not linked)", barrel.library is None)
        check("Barrel is linked into the scene", in_scene(barrel))
        check(
            "Barrel is selected and active",
            barrel.select_get() and bpy.context.view_layer.objects.active == barrel,
        )
        check("Barrel keeps its mesh", barrel.type == "MESH" and len(barrel.data.vertices) > 0)
    check("status reports the append", "Appended object Barrel" in CTX.state.status, CTX.state.status)


def append_collection_downloaded() -> None:
    """The panel's choice, a collection, with local files off: downloaded by a job, then appended."""
    CTX.prefs.prefer_local_files = False
    try:
        CTX.state.active = next(i for i, r in enumerate(CTX.state.results) if r.asset_id == CTX.ids["props"])
        CTX.state.datablock = "COLLECTION:Props"
        assert bpy.ops.cgchat.append(asset_id=CTX.ids["props"], datablock="") == {"FINISHED"}
        check("download runs as a job", CTX.jobs.pending() == 1 and CTX.state.busy)
        wait()
    finally:
        CTX.prefs.prefer_local_files = True
    props = bpy.data.collections.get("Props")
    check(
        "collection Props appended", props is not None and props.library is None, list(bpy.data.collections)
    )
    if props is not None:
        check("Props is in the scene", props in bpy.context.scene.collection.children_recursive)
        check(
            "Props brought its objects",
            {o.name.split(".")[0] for o in props.objects} == {"Barrel", "Crate", "Lantern"},
            [o.name for o in props.objects],
        )
        selected = {o.name for o in bpy.context.view_layer.objects if o.select_get()}
        check("the appended collection's objects are selected, and only they",
              selected == {o.name for o in props.all_objects}, sorted(selected))
    downloaded = [
        os.path.join(d, f)
        for d, _, names in os.walk(os.path.join(ARGS.cache, "files"))
        for f in names
        if f == "props_library_v001.blend"
    ]
    source = next(r.path for r in CTX.state.results if r.asset_id == CTX.ids["props"])
    check(
        "the .blend was downloaded into the cache folder, byte for byte",
        len(downloaded) == 1 and sha(downloaded[0]) == sha(source),
        downloaded,
    )
    check("status reports the append", "Appended collection Props" in CTX.state.status, CTX.state.status)


def link_object_and_collection() -> None:
    assert bpy.ops.cgchat.append(
        asset_id=CTX.ids["props"], kind="OBJECT", datablock="Lantern", link=True
    ) == {"FINISHED"}
    lantern = next((o for o in bpy.data.objects if o.name == "Lantern" and o.library is not None), None)
    check("linked object Lantern comes from the library", lantern is not None)
    if lantern is not None:
        check(
            "library path is the .blend",
            os.path.basename(lantern.library.filepath) == "props_library_v001.blend",
            lantern.library.filepath,
        )
        check("linked Lantern is in the scene", in_scene(lantern))
    assert bpy.ops.cgchat.append(
        asset_id=CTX.ids["props"], kind="COLLECTION", datablock="Props", link=True
    ) == {"FINISHED"}
    empty = bpy.context.view_layer.objects.active
    check(
        "linked collection is instanced by an empty",
        empty is not None
        and empty.instance_type == "COLLECTION"
        and empty.instance_collection is not None
        and empty.instance_collection.library is not None
        and empty.instance_collection.name == "Props",
        empty,
    )
    check("the instance is in the scene", empty is not None and in_scene(empty))
    check("status reports the link", "Linked collection Props" in CTX.state.status, CTX.state.status)


def images() -> None:
    results = search("brick wall albedo texture", "image")
    brick = result_named(results, "brick_albedo.png")
    if brick is None:
        return
    CTX.state.active = next(i for i, r in enumerate(CTX.state.results) if r.asset_id == brick.asset_id)
    log = draw_log(bpy.types.VIEW3D_PT_cgchat_result.draw)
    check(
        "result panel offers plane and texture for an image",
        ("set", "cgchat.import_image.target=TEXTURE") in log,
        log,
    )
    CTX.ids["image"] = brick.asset_id
    bpy.context.scene.cursor.location = (2.0, 0.0, 0.0)
    assert bpy.ops.cgchat.import_image(asset_id=brick.asset_id, target="PLANE") == {"FINISHED"}
    plane = bpy.context.view_layer.objects.active
    check(
        "image plane created and active",
        plane is not None and plane.type == "MESH" and len(plane.data.vertices) == 4,
        plane,
    )
    if plane is not None:
        check(
            "image plane is in the scene at the cursor",
            in_scene(plane) and tuple(plane.location) == (2.0, 0.0, 0.0),
        )
        check(
            "square image gives a square plane",
            abs(plane.dimensions.x - plane.dimensions.z) < 1e-6,
            tuple(plane.dimensions),
        )
        image = base_color_image(plane.active_material)
        check(
            "plane material: image texture into Base Color",
            image is not None and os.path.basename(image.filepath) == "brick_albedo.png",
            image,
        )
        check("plane has UVs", len(plane.data.uv_layers) == 1)

    # a 320x240 reference with spaces and non-ASCII in its name, downloaded (local files off)
    results = search("dragon wing reference photo", "image")
    ref = result_named(results, "référence dragon ailes.jpg")
    if ref is not None:
        CTX.prefs.prefer_local_files = False
        try:
            assert bpy.ops.cgchat.import_image(asset_id=ref.asset_id, target="PLANE") == {"FINISHED"}
            wait()
        finally:
            CTX.prefs.prefer_local_files = True
        plane = bpy.context.view_layer.objects.active
        image = base_color_image(plane.active_material) if plane and plane.active_material else None
        check(
            "downloaded non-ASCII image as a 4:3 plane",
            image is not None
            and image.size[:] == (320, 240)
            and abs(plane.dimensions.x / plane.dimensions.z - 4 / 3) < 1e-4
            and os.path.realpath(bpy.path.abspath(image.filepath)).startswith(os.path.realpath(ARGS.cache)),
            (image and image.filepath, plane and tuple(plane.dimensions)),
        )

    # as a texture: a cube without material gets one; a second image goes into the same material
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.view_layer.objects.active
    assert bpy.ops.cgchat.import_image(asset_id=CTX.ids["image"], target="TEXTURE") == {"FINISHED"}
    material = cube.active_material
    check("texture: the cube got a material", material is not None and len(cube.material_slots) == 1)
    if material is not None:
        image = base_color_image(material)
        check(
            "texture: Image Texture -> Base Color of its Principled BSDF",
            image is not None and os.path.basename(image.filepath) == "brick_albedo.png",
            image,
        )
        nodes = len(material.node_tree.nodes)
        results = search("bark albedo", "image")
        bark = result_named(results, "bark_albedo.jpg")
        if bark is not None:
            assert bpy.ops.cgchat.import_image(asset_id=bark.asset_id, target="TEXTURE") == {"FINISHED"}
            check(
                "status names the material",
                CTX.state.status == f"Added bark_albedo.jpg to material {material.name}",
                CTX.state.status,
            )
            check(
                "texture on an existing material: same material, new node now drives Base Color",
                cube.active_material == material
                and len(cube.material_slots) == 1
                and len(material.node_tree.nodes) == nodes + 1
                and os.path.basename(base_color_image(material).filepath) == "bark_albedo.jpg",
            )
    bpy.ops.object.select_all(action="DESELECT")
    bpy.context.view_layer.objects.active = None
    expect_error(
        "texture with no active object",
        lambda: bpy.ops.cgchat.import_image(asset_id=CTX.ids["image"], target="TEXTURE"),
        "select an object",
    )


def videos() -> None:
    results = search("dragon turntable", "video")
    mp4 = result_named(results, "dragon_turntable_v003.mp4")
    if mp4 is not None:
        log = draw_log(bpy.types.VIEW3D_PT_cgchat_result.draw)
        check("result panel offers the video buttons", ("operator", "cgchat.open_video") in log, log)
        assert bpy.ops.cgchat.open_video(asset_id=mp4.asset_id, how="CLIP") == {"FINISHED"}
        clip = bpy.data.movieclips.get("dragon_turntable_v003.mp4")
        check(
            "video loaded as a movie clip (96 frames)",
            clip is not None and clip.frame_duration == 96,
            clip and clip.frame_duration,
        )
        expect_error(
            "system player in background mode",
            lambda: bpy.ops.cgchat.open_video(asset_id=mp4.asset_id, how="SYSTEM"),
            "background mode",
        )
    mov = result_named(results, "castle_turntable_v001.mov")
    if mov is not None:
        CTX.prefs.prefer_local_files = False
        try:
            assert bpy.ops.cgchat.open_video(asset_id=mov.asset_id, how="CLIP") == {"FINISHED"}
            wait()
        finally:
            CTX.prefs.prefer_local_files = True
        clip = bpy.data.movieclips.get("castle_turntable_v001.mov")
        check(
            "downloaded MOV loaded as a movie clip",
            clip is not None
            and clip.frame_duration > 0
            and os.path.realpath(bpy.path.abspath(clip.filepath)).startswith(os.path.realpath(ARGS.cache)),
            clip and (clip.filepath, clip.frame_duration),
        )


def errors_are_reported() -> None:
    state = CTX.state
    # wrong kind of asset, unknown datablock: refused at once, with the reason
    search("brick albedo", "image")
    expect_error(
        "append from an image in the list",
        lambda: bpy.ops.cgchat.append(asset_id=CTX.ids["image"], kind="OBJECT", datablock="Barrel"),
        "is an image, not a .blend file",
    )
    search("props library")
    assert bpy.ops.cgchat.append(asset_id=CTX.ids["image"], kind="OBJECT", datablock="Barrel") == {"FINISHED"}
    wait()  # not in the list: the job asks the server what the asset is
    check(
        "append from an image by id: refused after asking the server",
        state.status_level == "ERROR" and "is an image, not a .blend file" in state.status,
        status(),
    )
    expect_error(
        "append an object the file lacks",
        lambda: bpy.ops.cgchat.append(asset_id=CTX.ids["props"], kind="OBJECT", datablock="No_Such_Object"),
        "Barrel",
    )
    # an id the server does not know: the server's error JSON, in the status
    assert bpy.ops.cgchat.append(asset_id=987654, kind="OBJECT", datablock="Barrel") == {"FINISHED"}
    wait()
    check(
        "unknown asset: the server's 404 message in the status",
        state.status_level == "ERROR" and "no asset with id 987654" in state.status,
        status(),
    )
    # a server that is not there
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    results_before = len(state.results)
    CTX.prefs.server_url = f"http://127.0.0.1:{closed_port}"
    CTX.prefs.timeout = 5
    try:
        state.query = "dragon"
        assert bpy.ops.cgchat.search() == {"FINISHED"}
        wait()
        check(
            "unreachable server: an error in the status bar, no traceback",
            state.status_level == "ERROR"
            and "cannot reach" in state.status
            and str(closed_port) in state.status,
            status(),
        )
        check("unreachable server: previous results kept", len(state.results) == results_before)
        log = draw_log(CTX.ui.draw_statusbar)
        check("status bar shows the error", ("label", state.status) in log, log)
        CTX.prefs.server_url = "localhost:8000"
        assert bpy.ops.cgchat.search() == {"FINISHED"}
        wait()
        check(
            "URL without a scheme: explained in the status",
            state.status_level == "ERROR" and "not valid" in state.status,
            status(),
        )
    finally:
        CTX.prefs.server_url = ARGS.server
        CTX.prefs.timeout = 30
    expect_error(
        "empty query", lambda: (setattr(state, "query", "  "), bpy.ops.cgchat.search())[1], "type something"
    )


def stale_replies_are_dropped() -> None:
    state = CTX.state
    state.asset_type = "ALL"
    state.query = "castle turntable"
    bpy.ops.cgchat.search()
    state.query = "props library"
    bpy.ops.cgchat.search()
    wait()
    check(
        "only the newest search fills the list",
        state.results[0].name == "props_library_v001.blend",
        [r.name for r in state.results],
    )


def check_server() -> None:
    assert bpy.ops.cgchat.check_server() == {"FINISHED"}
    wait()
    check(
        "check connection reports the asset count",
        CTX.state.status_level == "INFO" and "ok" in CTX.state.status and "assets" in CTX.state.status,
        status(),
    )


def disable() -> None:
    assert bpy.ops.preferences.addon_disable(module=ADDON) == {"FINISHED"}
    check(
        "disabled cleanly",
        not hasattr(bpy.types, "VIEW3D_PT_cgchat_search")
        and not hasattr(bpy.types.WindowManager, "cgchat")
        and not bpy.app.timers.is_registered(CTX.jobs.tick),
    )


def remove_if_not_isolated() -> None:
    """Run without a temporary BLENDER_USER_SCRIPTS, the install went to the real user folder: undo it
    (not with preferences.addon_remove, which needs a UI area in 3.4)."""
    if os.environ.get("BLENDER_USER_SCRIPTS"):
        return
    import shutil

    folder = os.path.join(bpy.utils.user_resource("SCRIPTS"), "addons", ADDON)
    if os.path.isdir(folder):
        shutil.rmtree(folder, ignore_errors=True)
        print(f"removed {folder} again")


def build_zip() -> str:
    import importlib.util

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    spec = importlib.util.spec_from_file_location(
        "cgchat_build_zip", os.path.join(repo, "blender_addon", "build_zip.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.build(os.path.join(tempfile.mkdtemp(prefix="cgchat-addon-"), "cgchat_blender.zip")))


def main() -> int:
    global ARGS
    ARGS = parse_args()
    if not ARGS.cache:
        ARGS.cache = tempfile.mkdtemp(prefix="cgchat-blender-cache-")
    if not ARGS.zip:
        ARGS.zip = build_zip()
    print(f"Blender {bpy.app.version_string}, server {ARGS.server}, zip {ARGS.zip}, cache {ARGS.cache}")
    if not os.environ.get("BLENDER_USER_SCRIPTS"):
        print(
            "note: BLENDER_USER_SCRIPTS is not set; the add-on is installed into your user scripts folder "
            "and removed at the end"
        )
    try:
        step(install_and_enable)
        if FAILED:
            return 1
        for group in (
            preferences,
            ui_registered,
            search_and_previews,
            append_object,
            append_collection_downloaded,
            link_object_and_collection,
            images,
            videos,
            errors_are_reported,
            stale_replies_are_dropped,
            check_server,
            disable,
        ):
            step(group)
    finally:
        remove_if_not_isolated()
    print(f"cgchat add-on checks: {len(PASSED)} passed, {len(FAILED)} failed")
    if FAILED:
        print("FAILED CHECKS:\n  " + "\n  ".join(FAILED))
        return 1
    print("ALL CHECKS PASSED")
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except BaseException:  # noqa: BLE001 - whatever happens, Blender must exit non-zero
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    if not bpy.app.binary_path:
        # Blender as a Python module (PyPI `bpy`, how the 4.x API is tested): its interpreter teardown
        # can crash after everything is done, so leave without it once the result is printed.
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
