"""Add-on preferences: which server, which token, where downloads go."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, FloatProperty, StringProperty

from . import client

ADDON_ID = __package__  # "cgchat_blender" (or bl_ext.<repo>.cgchat_blender as a 4.2+ extension)


class CGCHAT_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    server_url: StringProperty(
        name="Server URL",
        default="http://127.0.0.1:8000",
        description="Base URL of the cgchat API (cgchat serve)",
    )
    token: StringProperty(
        name="Token",
        subtype="PASSWORD",
        default="",
        description="Access token sent as 'Authorization: Bearer ...' (servers with AUTH_MODE=cognito); "
        "stored in plain text in Blender's preferences",
    )
    timeout: FloatProperty(
        name="Timeout (s)",
        default=30.0,
        min=1.0,
        max=600.0,
        description="Seconds to wait for the server before giving up",
    )
    cache_dir: StringProperty(
        name="Download Folder",
        subtype="DIR_PATH",
        default="",
        description="Where downloaded assets and thumbnails are kept (empty: the system temp folder)",
    )
    prefer_local_files: BoolProperty(
        name="Use Local Files",
        default=True,
        description="Use an asset's indexed path directly when it exists on this machine "
        "(shared storage); otherwise download it from the server",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "server_url")
        layout.prop(self, "token")
        row = layout.row()
        row.prop(self, "timeout")
        row.prop(self, "prefer_local_files")
        layout.prop(self, "cache_dir")
        layout.operator("cgchat.check_server", icon="URL")


def get(context: bpy.types.Context | None = None) -> CGCHAT_AddonPreferences:
    context = context or bpy.context
    return context.preferences.addons[ADDON_ID].preferences


def settings(context: bpy.types.Context | None = None) -> dict:
    """Plain values for a worker thread (which must not read bpy)."""
    prefs = get(context)
    return {
        "base_url": prefs.server_url,
        "token": prefs.token,
        "timeout": prefs.timeout,
        "cache_dir": bpy.path.abspath(prefs.cache_dir) if prefs.cache_dir else client.default_cache_dir(),
        "prefer_local": prefs.prefer_local_files,
    }


def make_client(values: dict) -> client.Client:
    return client.Client(values["base_url"], values["token"], values["timeout"])


classes = (CGCHAT_AddonPreferences,)
