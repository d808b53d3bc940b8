"""The sidebar (N panel) tab "cgchat" in the 3D viewport, and the status bar message."""

from __future__ import annotations

import bpy

from . import preferences, previews, properties

LEVEL_ICONS = {"INFO": "INFO", "WARNING": "ERROR", "ERROR": "CANCEL"}


def _icon_kwargs(context: bpy.types.Context, result: properties.CGCHAT_Result) -> dict:
    icon = previews.icon_id(preferences.get(context).server_url, result.asset_id)
    if icon:
        return {"icon_value": icon}
    return {"icon": properties.TYPE_ICONS.get(result.asset_type, "FILE")}


class CGCHAT_UL_results(bpy.types.UIList):
    bl_idname = "CGCHAT_UL_results"

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0, flt_flag=0):
        if self.layout_type in {"DEFAULT", "COMPACT"}:
            row = layout.row(align=True)
            row.label(text=item.name, **_icon_kwargs(context, item))
            sub = row.row()
            sub.alignment = "RIGHT"
            sub.label(text=item.timecode or f"{item.score:.3f}")
        else:  # GRID
            layout.alignment = "CENTER"
            layout.label(text="", **_icon_kwargs(context, item))


def draw_status(layout: bpy.types.UILayout, state: properties.CGCHAT_State) -> None:
    if state.status:
        icon = "SORTTIME" if state.busy else LEVEL_ICONS.get(state.status_level, "INFO")
        layout.label(text=state.status, icon=icon)


class VIEW3D_PT_cgchat_search(bpy.types.Panel):
    bl_idname = "VIEW3D_PT_cgchat_search"
    bl_label = "Asset Search"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "cgchat"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        state = properties.get(context)
        row = layout.row(align=True)
        row.prop(state, "query", text="", icon="VIEWZOOM")
        row.operator("cgchat.search", text="", icon="VIEWZOOM")
        row = layout.row(align=True)
        row.prop(state, "mode", text="")
        row.prop(state, "asset_type", text="")
        row.prop(state, "limit", text="")
        box = layout.box()
        draw_status(box, state)
        if not state.status:
            box.label(text=preferences.get(context).server_url, icon="URL")
        layout.template_list("CGCHAT_UL_results", "", state, "results", state, "active", rows=6)


class VIEW3D_PT_cgchat_result(bpy.types.Panel):
    bl_idname = "VIEW3D_PT_cgchat_result"
    bl_label = "Selected Result"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "cgchat"
    bl_parent_id = "VIEW3D_PT_cgchat_search"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return properties.active_result(properties.get(context)) is not None

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        state = properties.get(context)
        result = properties.active_result(state)
        if result is None:
            return
        icon = previews.icon_id(preferences.get(context).server_url, result.asset_id)
        if icon:
            layout.template_icon(icon_value=icon, scale=6.0)
        col = layout.column(align=True)
        col.label(text=result.name, icon=properties.TYPE_ICONS.get(result.asset_type, "FILE"))
        col.label(text=f"{result.asset_type} · score {result.score:.3f} · {result.matched_by}")
        if result.timecode:
            col.label(text=f"Matched at {result.timecode}", icon="TIME")
        col.label(text=result.path)

        if result.asset_type == "blend":
            layout.prop(state, "datablock", text="")
            row = layout.row(align=True)
            for link, text, icon_name in ((False, "Append", "APPEND_BLEND"), (True, "Link", "LINK_BLEND")):
                op = row.operator("cgchat.append", text=text, icon=icon_name)
                op.asset_id = result.asset_id
                op.link = link
                op.datablock = ""  # the choice above
        elif result.asset_type == "image":
            row = layout.row(align=True)
            for target, text, icon_name in (
                ("PLANE", "As Plane", "MESH_PLANE"),
                ("TEXTURE", "As Texture", "TEXTURE"),
            ):
                op = row.operator("cgchat.import_image", text=text, icon=icon_name)
                op.asset_id = result.asset_id
                op.target = target
        elif result.asset_type == "video":
            row = layout.row(align=True)
            for how, text, icon_name in (("CLIP", "Movie Clip", "FILE_MOVIE"), ("SYSTEM", "Play", "PLAY")):
                op = row.operator("cgchat.open_video", text=text, icon=icon_name)
                op.asset_id = result.asset_id
                op.how = how
        else:
            layout.label(text="No import for this type yet", icon="INFO")


def draw_statusbar(self, context: bpy.types.Context) -> None:
    """Appended to the status bar: the last cgchat message (errors stay until the next action)."""
    state = getattr(context.window_manager, "cgchat", None)
    if state is not None and state.status and (state.busy or state.status_level != "INFO"):
        draw_status(self.layout, state)


classes = (CGCHAT_UL_results, VIEW3D_PT_cgchat_search, VIEW3D_PT_cgchat_result)


def register() -> None:
    bpy.types.STATUSBAR_HT_header.append(draw_statusbar)


def unregister() -> None:
    bpy.types.STATUSBAR_HT_header.remove(draw_statusbar)
