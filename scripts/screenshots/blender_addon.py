"""Take docs/screenshots/blender-addon.png: the cgchat add-on in Blender's real UI (not background mode).

Runs INSIDE Blender with a window (under Xvfb on a machine without a display), against a live
cgchat server that has the repository's samples/ indexed; scripts/screenshots/blender_addon.sh does
all of it (server, zip, Xvfb, Blender). By hand:

    BLENDER_USER_SCRIPTS=$(mktemp -d) BLENDER_USER_CONFIG=$(mktemp -d) \
    xvfb-run -a -s "-screen 0 1600x1000x24" \
    blender --factory-startup --enable-event-simulate -p 0 0 1600 1000 \
        --python scripts/screenshots/blender_addon.py -- \
        --server http://127.0.0.1:8799 --zip dist/cgchat_blender.zip --out docs/screenshots/blender-addon.png

What it does: installs and enables the add-on from the zip, opens the 3D viewport's sidebar on the
"cgchat" tab, searches, selects a .blend result (so that "Selected Result" shows its preview and
the Append/Link buttons), appends a collection from it into the scene, frames it, takes the
screenshot (bpy.ops.screen.screenshot) and quits. Exits non-zero when something failed.

Blender 3.4 has no Python API for a sidebar's active tab (Region.active_panel_category came later),
so the tab is switched the way a user does it: Ctrl+mouse wheel over the sidebar, sent with
Window.event_simulate (which needs --enable-event-simulate), until the add-on's panel is drawn.
Everything runs from bpy.app.timers, so Blender's event loop (and the add-on's own timer) keep going.
"""

from __future__ import annotations

import argparse
import atexit
import math
import os
import shutil
import sys
import tempfile
import time
import traceback

import bpy
from mathutils import Euler, Vector

ADDON = "cgchat_blender"


def parse_args() -> argparse.Namespace:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="blender_addon.py")
    parser.add_argument(
        "--server", default="http://127.0.0.1:8799", help="cgchat server with samples/ indexed"
    )
    parser.add_argument("--zip", required=True, help="the add-on zip (blender_addon/build_zip.py)")
    parser.add_argument("--out", default="docs/screenshots/blender-addon.png", help="PNG to write")
    parser.add_argument("--query", default="props library", help="what to search for")
    parser.add_argument("--result", default="props_library_v001.blend", help="result to select")
    parser.add_argument("--append", default="COLLECTION:Props", help="KIND:NAME to append from it")
    parser.add_argument("--limit", type=int, default=12, help="number of results to ask for")
    parser.add_argument("--scale", type=float, default=1.25, help="Blender's UI scale")
    parser.add_argument("--sidebar", type=int, default=190, help="pixels to widen the sidebar by")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds before giving up")
    return parser.parse_args(argv)


ARGS = parse_args()
WORK = tempfile.mkdtemp(prefix="cgchat-shot-")  # downloads, thumbnails, quit.blend; removed at exit
atexit.register(shutil.rmtree, WORK, ignore_errors=True)
STARTED = time.monotonic()
DRAWN = {"search": 0}
EXIT = {"code": 1}


def log(message: str) -> None:
    print(f"screenshot: {message}", flush=True)


# ---------------------------------------------------------------------- set-up (runs at once)


def setup() -> None:
    prefs = bpy.context.preferences
    prefs.view.show_splash = False
    prefs.view.use_save_prompt = False  # quit_blender must not ask about the unsaved scene
    prefs.view.show_tooltips = False  # the simulated mouse must not leave a tooltip in the picture
    prefs.view.ui_scale = ARGS.scale
    prefs.use_preferences_save = False
    # quit_blender saves quit.blend into the temporary folder: keep it out of /tmp.
    os.makedirs(os.path.join(WORK, "tmp"))
    prefs.filepaths.temporary_directory = os.path.join(WORK, "tmp")
    log(f"user scripts: {bpy.utils.user_resource('SCRIPTS')}")
    assert bpy.ops.preferences.addon_install(filepath=os.path.abspath(ARGS.zip), overwrite=True) == {
        "FINISHED"
    }
    assert bpy.ops.preferences.addon_enable(module=ADDON) == {"FINISHED"}
    addon = prefs.addons[ADDON].preferences
    addon.server_url = ARGS.server
    addon.cache_dir = os.path.join(WORK, "cache")
    addon.prefer_local_files = True

    # Know when the search panel is really drawn, i.e. when its tab is the active one.
    panel = bpy.types.VIEW3D_PT_cgchat_search
    draw = panel.draw

    def counting_draw(self, context):
        DRAWN["search"] += 1
        return draw(self, context)

    panel.draw = counting_draw


# ---------------------------------------------------------------------- the scenario (a generator)


def view3d():
    window = bpy.context.window_manager.windows[0]
    area = max((a for a in window.screen.areas if a.type == "VIEW_3D"), key=lambda a: a.width * a.height)
    regions = {r.type: r for r in area.regions}
    return window, area, regions["WINDOW"], regions["UI"]


def override(**extra):
    window, area, region, _ = view3d()
    values = {"window": window, "screen": window.screen, "area": area, "region": region}
    values.update(extra)
    return bpy.context.temp_override(**values)


def redraw_all() -> None:
    window = bpy.context.window_manager.windows[0]
    for area in window.screen.areas:
        area.tag_redraw()
    with bpy.context.temp_override(window=window):
        bpy.ops.wm.redraw_timer(type="DRAW_WIN_SWAP", iterations=1)


def wait_for(condition, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        yield 0.1


def scenario():
    window, area, region, sidebar = view3d()
    log(f"window {window.width}x{window.height}, 3D viewport {area.width}x{area.height}")
    space = area.spaces.active
    space.show_region_ui = True
    space.show_region_toolbar = True
    # A clean stage: the props go where the default cube was.
    for name in ("Cube",):
        obj = bpy.data.objects.get(name)
        if obj is not None:
            bpy.data.objects.remove(obj, do_unlink=True)
    yield 0.5

    # The sidebar's tab: Ctrl+wheel over the sidebar cycles its tabs (Item, Tool, View, cgchat).
    for attempt in range(16):
        redraw_all()
        yield 0.3
        if DRAWN["search"]:
            break
        _, _, _, sidebar = view3d()
        x, y = sidebar.x + sidebar.width - 4, sidebar.y + 12  # the tab strip, below the tabs
        window.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
        window.event_simulate(type="WHEELDOWNMOUSE", value="PRESS", x=x, y=y, ctrl=True)
        log(f"sidebar tab: ctrl+wheel #{attempt + 1} at {x},{y}")
    else:
        raise RuntimeError("could not bring up the cgchat tab in the sidebar")
    log("cgchat tab is active")

    # Widen the sidebar so that names and messages fit: drag its left edge, as a user would. The edge
    # (an "action zone") sits a little inside the region when the region overlaps the viewport.
    if ARGS.sidebar:
        _, _, _, sidebar = view3d()
        before = sidebar.width
        for inset in (10, 12, 8, 14, 6, 16, 4, 2, 0):
            x, y = sidebar.x + inset, sidebar.y + sidebar.height - 60
            window.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
            yield 0.2
            window.event_simulate(type="LEFTMOUSE", value="PRESS", x=x, y=y)
            yield 0.2
            for step in range(1, 11):
                window.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x - ARGS.sidebar * step // 10, y=y)
                yield 0.05
            window.event_simulate(type="LEFTMOUSE", value="RELEASE", x=x - ARGS.sidebar, y=y)
            yield 0.3
            _, _, _, sidebar = view3d()
            log(f"sidebar: dragged from x={x}: width {before} -> {sidebar.width}")
            if sidebar.width != before:
                break

    # Park the mouse on the status bar, away from buttons.
    window.event_simulate(type="MOUSEMOVE", value="NOTHING", x=window.width // 2, y=4)

    state = bpy.context.window_manager.cgchat
    state.query, state.mode, state.asset_type, state.limit = ARGS.query, "hybrid", "ALL", ARGS.limit
    with override():
        assert bpy.ops.cgchat.search() == {"FINISHED"}
    from cgchat_blender import jobs, previews

    yield from wait_for(lambda: not state.busy, "search results", ARGS.timeout)
    if state.status_level != "INFO" or not len(state.results):
        raise RuntimeError(f"search failed: {state.status_level}: {state.status}")
    yield from wait_for(lambda: jobs.pending() == 0, "preview icons", ARGS.timeout)
    base = bpy.context.preferences.addons[ADDON].preferences.server_url
    with_icons = sum(previews.has(base, r.asset_id) for r in state.results)
    log(f"{state.status}; {with_icons}/{len(state.results)} with preview icons")

    names = [r.name for r in state.results]
    if ARGS.result not in names:
        raise RuntimeError(f"{ARGS.result} not among the results: {names}")
    state.active = names.index(ARGS.result)
    result = state.results[state.active]
    if ARGS.append:
        kind, name = ARGS.append.split(":", 1)
        state.datablock = ARGS.append
        with override():
            outcome = bpy.ops.cgchat.append(asset_id=result.asset_id, kind=kind, datablock=name)
        log(f"append {ARGS.append}: {outcome}")
        yield from wait_for(lambda: not state.busy, "the append", ARGS.timeout)
        log(f"status: {state.status_level}: {state.status}")
        if state.status_level != "INFO":
            raise RuntimeError(f"append failed: {state.status}")
        collection = bpy.data.collections.get(name) if kind == "COLLECTION" else None
        objects = list(collection.all_objects) if collection else [bpy.data.objects[name]]
        layer = bpy.context.view_layer
        for obj in layer.objects:
            obj.select_set(obj in objects)
        layer.objects.active = objects[0]
        yield 0.2
        # A three-quarter front view (the props stand in a row along X), framed on them.
        view = view3d()[1].spaces.active.region_3d
        view.view_rotation = Euler((math.radians(68), 0.0, math.radians(22))).to_quaternion()
        yield 0.1
        with override():
            bpy.ops.view3d.view_selected()
        # Centre the props in the part of the viewport the sidebar leaves free, a little farther.
        _, area, region, sidebar = view3d()
        view = area.spaces.active.region_3d
        view.view_distance *= 1.15
        shift = sidebar.width / 2 / region.width * 2 * view.view_distance * 0.4
        view.view_location += view.view_rotation @ Vector((shift, 0.0, 0.0))
        for obj in objects[1:]:
            obj.select_set(False)  # one selected (active) object, like after a click
        yield 0.2

    # Let the viewport and panels settle (llvmpipe is slow), then draw once more and shoot.
    for _ in range(5):
        redraw_all()
        yield 0.3
    out = os.path.abspath(ARGS.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with bpy.context.temp_override(window=window, screen=window.screen):
        assert bpy.ops.screen.screenshot(filepath=out) == {"FINISHED"}
    if not os.path.isfile(out) or os.path.getsize(out) == 0:
        raise RuntimeError(f"no screenshot written to {out}")
    log(f"wrote {out} ({os.path.getsize(out)} bytes)")
    EXIT["code"] = 0


def run(steps) -> float | None:
    try:
        delay = next(steps)
    except StopIteration:
        finish()
        return None
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        log("FAILED")
        finish()
        return None
    if time.monotonic() - STARTED > ARGS.timeout * 3:
        log("FAILED: took too long")
        finish()
        return None
    return delay


def finish() -> None:
    def quit_blender() -> None:
        sys.stdout.flush()
        if EXIT["code"]:
            shutil.rmtree(WORK, ignore_errors=True)
            os._exit(EXIT["code"])  # quit_blender always exits 0
        bpy.ops.wm.quit_blender()

    bpy.app.timers.register(quit_blender, first_interval=0.2)


try:
    setup()
except Exception:  # noqa: BLE001
    traceback.print_exc()
    log("FAILED in set-up")
    sys.stdout.flush()
    os._exit(1)

_steps = scenario()
bpy.app.timers.register(lambda: run(_steps), first_interval=1.0)
