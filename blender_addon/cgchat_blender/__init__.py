"""cgchat for Blender: search the studio's asset library from the 3D viewport's sidebar, then append
or link from .blend files, use images as planes or textures, and open videos.

A client of the cgchat HTTP API (POST /v1/search, GET /v1/assets/{id}[/file|/thumbnail]).
"""

bl_info = {
    "name": "cgchat Asset Search",
    "author": "cgchat",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "3D Viewport > Sidebar (N) > cgchat",
    "description": "Search the cgchat asset library: append/link from .blend files, images as planes "
    "or textures, videos as movie clips",
    "category": "Import-Export",
    "support": "COMMUNITY",
}

if "bpy" in locals():  # "Reload Scripts": pick up edited modules
    import importlib

    for _module in (client, jobs, preferences, properties, previews, importers, operators, ui):  # noqa: F821
        importlib.reload(_module)

import bpy

from . import client, importers, jobs, operators, preferences, previews, properties, ui  # noqa: F401

_classes = (*preferences.classes, *properties.classes, *operators.classes, *ui.classes)


def register() -> None:
    for cls in _classes:
        bpy.utils.register_class(cls)
    properties.register()
    previews.register()
    ui.register()


def unregister() -> None:
    jobs.unregister()
    ui.unregister()
    previews.unregister()
    properties.unregister()
    for cls in reversed(_classes):
        bpy.utils.unregister_class(cls)
