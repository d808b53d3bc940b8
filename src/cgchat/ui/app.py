"""The web app (Gradio), mounted next to the API at /ui by ``cgchat serve``.

Every action is an HTTP call to the API (ui/client.py) on the same server, so the UI can do nothing a
curl user cannot, and shows the API's own error messages. Layout: chat on the left (streamed tokens,
[n] citations linked to their assets, sessions), search and the results gallery on the right
(mode, filters, a picture for "find similar"), and a detail view of the selected asset.
"""

from __future__ import annotations

import io
import re
from typing import Any

import gradio as gr
from PIL import Image

from cgchat.ui.client import ApiClient, ApiError

MODES = ["hybrid", "semantic", "keyword", "visual"]
TYPES = ["image", "video", "blend", "model", "document", "other"]
ENGINES = ["cycles", "eevee", "workbench"]
_CITATION = re.compile(r"\[(\d{1,3})\]")


def _client(request: gr.Request, api_url: str | None, token: str | None = None) -> ApiClient:
    """The API this page came from (its Host header), unless UI_API_URL says otherwise, called with
    the token typed into the page (AUTH_MODE=cognito) or the page request's own bearer token."""
    headers = dict(request.headers)
    base = api_url or f"http://{headers.get('host', '127.0.0.1:8000')}"
    token = (token or "").strip() or headers.get("authorization", "").removeprefix("Bearer ").strip() or None
    return ApiClient(base, token)


def build_ui(api_url: str | None = None) -> gr.Blocks:
    with gr.Blocks(title="cgchat") as ui:
        sources_state = gr.State([])  # the current results: [{id, name, type, ...}]
        session_state = gr.State(None)
        gr.Markdown("## cgchat — find and talk about the studio's assets")
        with gr.Accordion("Sign in (servers with AUTH_MODE=cognito)", open=False) as sign_in:
            token = gr.Textbox(label="Access token", type="password", elem_id="token",
                               placeholder="a Cognito access token; sent to the API as Authorization: Bearer")
        status = gr.Markdown("", elem_id="status")
        with gr.Row():
            with gr.Column(scale=5):
                with gr.Row():
                    sessions = gr.Dropdown(label="Session", choices=[], value=None, scale=4, elem_id="sessions")
                    new_session = gr.Button("New", scale=1, elem_id="new-session")
                    delete_session = gr.Button("Delete", scale=1, variant="stop", elem_id="delete-session")
                chatbot = gr.Chatbot(label="Chat", height=460, elem_id="chatbot")
                question = gr.Textbox(label="Ask", placeholder="e.g. show me Blender files rendered with Cycles",
                                      elem_id="question")
                ask = gr.Button("Send", variant="primary", elem_id="send")
            with gr.Column(scale=6):
                with gr.Row():
                    query = gr.Textbox(label="Search", placeholder="dragon turntable, sh010, castle bricks…",
                                       scale=4, elem_id="query")
                    mode = gr.Radio(MODES, value="hybrid", label="Mode", scale=3, elem_id="mode")
                with gr.Row():
                    types = gr.Dropdown(TYPES, multiselect=True, label="Type", elem_id="type-filter")
                    engines = gr.Dropdown(ENGINES, multiselect=True, label="Engine", elem_id="engine-filter")
                    resolution = gr.Textbox(label="Resolution", placeholder="4k, 1080p, 1920x1080",
                                            elem_id="resolution-filter")
                with gr.Row():
                    picture = gr.Image(label="Find similar (needs CLIP)", type="pil", height=140, elem_id="picture")
                    search_button = gr.Button("Search", variant="primary", elem_id="search")
                visual_hint = gr.Markdown("", elem_id="visual-hint")
                gallery = gr.Gallery(label="Results", columns=4, height=360, elem_id="gallery", allow_preview=False)
                detail = gr.Markdown("Select a result to see its details.", elem_id="detail")

        def on_load(token_value, request: gr.Request):  # noqa: ANN001, ANN202
            client = _client(request, api_url, token_value)
            try:
                config = client.config()
                choices = _session_choices(client)
            except ApiError as exc:
                return gr.update(), gr.update(), gr.update(), f"**Server problem:** {exc}{_sign_in_hint(exc)}", gr.update()
            visual = bool(config.get("visual_model"))
            hint = "" if visual else (
                "Visual search is off: no CLIP model is installed. Install one with "
                f"`{config.get('visual_install') or 'cgchat models install-clip SOURCE'}`.")
            modes = gr.update(choices=MODES if visual else [m for m in MODES if m != "visual"])
            signed_in_or_open = gr.update(visible=config.get("auth_mode") != "off")  # no sign-in box where auth is off
            return gr.update(choices=choices), gr.update(interactive=visual), modes, hint, signed_in_or_open

        load_outputs = [sessions, picture, mode, visual_hint, sign_in]
        ui.load(on_load, [token], load_outputs)
        token.submit(on_load, [token], load_outputs)

        def on_search(text, mode_value, type_values, engine_values, res, image, token_value,  # noqa: ANN001, ANN202
                      request: gr.Request):
            body: dict[str, Any] = {"query": text or "", "mode": mode_value, "limit": 24}
            if type_values:
                body["type"] = type_values
            if engine_values:
                body["engine"] = engine_values
            if res:
                body["resolution"] = res.strip()
            if image is not None:
                body["image_base64"] = _png_base64(image)
                if mode_value in ("semantic", "keyword"):
                    body["mode"] = "visual"
            client = _client(request, api_url, token_value)
            try:
                reply = client.search(body)
            except ApiError as exc:
                return gr.update(), [], f"**Search failed:** {exc}{_sign_in_hint(exc)}"
            results = reply["results"]
            note = f"{len(results)} results · {', '.join(reply['retrievers'])}" + (
                f" · filters {reply['filters']}" if reply["filters"] else "")
            return _gallery(client, results), results, note

        search_inputs = [query, mode, types, engines, resolution, picture, token]
        search_button.click(on_search, search_inputs, [gallery, sources_state, status])
        query.submit(on_search, search_inputs, [gallery, sources_state, status])

        def on_select(results, token_value, event: gr.SelectData, request: gr.Request):  # noqa: ANN001, ANN202
            if not results or event.index is None or event.index >= len(results):
                return gr.update()
            hit = results[event.index]
            try:
                asset = _client(request, api_url, token_value).asset(hit["id"])
            except ApiError as exc:
                return f"**Cannot open asset:** {exc}"
            return _detail_markdown(asset, hit)

        gallery.select(on_select, [sources_state, token], [detail])

        def on_ask(text, history, session_id, token_value, request: gr.Request):  # noqa: ANN001, ANN202
            text = (text or "").strip()
            if not text:
                yield history, session_id, gr.update(), gr.update(), "Type a question first."
                return
            client = _client(request, api_url, token_value)
            history = [*history, {"role": "user", "content": text}, {"role": "assistant", "content": ""}]
            answer, results = "", []
            yield history, session_id, gr.update(), gr.update(), "Searching…"
            try:
                for event in client.chat_stream(text, session_id):
                    if event.name == "meta":
                        session_id = event.data["session_id"]
                    elif event.name == "sources":
                        results = [{"id": s["asset_id"], **s} for s in event.data["sources"]]
                        yield history, session_id, _gallery(client, results), results, "Answering…"
                    elif event.name == "token":
                        answer += event.data["text"]
                        history[-1] = {"role": "assistant", "content": _linked(answer, results)}
                        yield history, session_id, gr.update(), gr.update(), "Answering…"
                    elif event.name == "error":
                        answer += f"\n\n*The answer stopped: {event.data['message']}*"
                        history[-1] = {"role": "assistant", "content": _linked(answer, results)}
            except ApiError as exc:
                yield history[:-1], session_id, gr.update(), gr.update(), f"**Chat failed:** {exc}{_sign_in_hint(exc)}"
                return
            yield history, session_id, gr.update(), gr.update(), f"Answered from {len(results)} sources."

        ask_outputs = [chatbot, session_state, gallery, sources_state, status]
        ask.click(on_ask, [question, chatbot, session_state, token], ask_outputs).then(
            _refresh_sessions(api_url), [session_state, token], [sessions])
        question.submit(on_ask, [question, chatbot, session_state, token], ask_outputs).then(
            _refresh_sessions(api_url), [session_state, token], [sessions])

        def on_new():  # noqa: ANN202
            return [], None, gr.update(value=None), "New session."

        new_session.click(on_new, None, [chatbot, session_state, sessions, status])

        def on_open(session_id, token_value, request: gr.Request):  # noqa: ANN001, ANN202
            if not session_id:
                return gr.update(), gr.update(), gr.update()
            try:
                messages = _client(request, api_url, token_value).session(session_id)["messages"]
            except ApiError as exc:
                return gr.update(), gr.update(), f"**Cannot open the session:** {exc}"
            history = [{"role": m["role"], "content": m["content"]} for m in messages]
            return history, session_id, f"Reopened a session of {len(messages) // 2} turns."

        sessions.input(on_open, [sessions, token], [chatbot, session_state, status])

        def on_delete(session_id, token_value, request: gr.Request):  # noqa: ANN001, ANN202
            if not session_id:
                return gr.update(), gr.update(), gr.update(), "No session selected."
            client = _client(request, api_url, token_value)
            try:
                client.delete_session(session_id)
            except ApiError as exc:
                return gr.update(), gr.update(), gr.update(), f"**Cannot delete:** {exc}"
            return [], None, gr.update(choices=_session_choices(client), value=None), "Session deleted."

        delete_session.click(on_delete, [session_state, token], [chatbot, session_state, sessions, status])
    return ui


def _sign_in_hint(exc: ApiError) -> str:
    return " — open *Sign in* and paste an access token." if exc.status == 401 else ""


def _refresh_sessions(api_url: str | None):  # noqa: ANN202
    def refresh(session_id, token_value, request: gr.Request):  # noqa: ANN001, ANN202
        try:
            return gr.update(choices=_session_choices(_client(request, api_url, token_value)), value=session_id)
        except ApiError:
            return gr.update()

    return refresh


def _session_choices(client: ApiClient) -> list[tuple[str, str]]:
    return [(s["title"] or s["id"][:8], s["id"]) for s in client.sessions()]


def _gallery(client: ApiClient, results: list[dict[str, Any]]) -> list[tuple[Image.Image, str]]:
    items = []
    for hit in results:
        url = hit.get("thumbnail_url")  # search results and chat sources both carry it
        data = client.thumbnail(url) if url else None
        items.append((_picture(data, hit["type"]), _caption(hit)))
    return items


def _picture(data: bytes | None, kind: str) -> Image.Image:
    if data:
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
            return image.convert("RGB")
        except OSError:
            pass
    colour = {"blend": (232, 125, 13), "video": (60, 60, 90), "model": (70, 110, 70)}.get(kind, (120, 120, 120))
    return Image.new("RGB", (256, 256), colour)  # a plain tile for assets without a picture


def _caption(hit: dict[str, Any]) -> str:
    meta = hit.get("metadata") or {}
    facts = [hit["type"]]
    if blend := meta.get("blend"):
        facts += [str(blend.get("render_engine") or "").replace("BLENDER_", "").title(),
                  _res(blend.get("resolution_x"), blend.get("resolution_y"))]
    elif video := meta.get("video"):
        facts += [_res(video.get("width"), video.get("height")), f"{video.get('fps') or ''} fps",
                  f"{video.get('duration_s') or 0:.1f} s"]
    elif image := meta.get("image") or meta.get("exr"):
        facts.append(_res(image.get("width"), image.get("height")))
    if hit.get("timecode"):
        facts.append(f"@ {hit['timecode']}")
    return f"{hit['name']} · " + " · ".join(f for f in facts if f and f != " fps")


def _res(w: Any, h: Any) -> str:
    return f"{w}x{h}" if w and h else ""


def _linked(answer: str, results: list[dict[str, Any]]) -> str:
    """[n] → a link to source n's file, so a citation opens the asset it names."""
    by_n = {r["n"]: r for r in results if "n" in r}

    def link(match: re.Match[str]) -> str:
        source = by_n.get(int(match.group(1)))
        if source is None:
            return match.group(0)
        return f"[[{match.group(1)}]](/v1/assets/{source['asset_id']}/file \"{source['name']}\")"

    return _CITATION.sub(link, answer)


def _detail_markdown(asset: dict[str, Any], hit: dict[str, Any]) -> str:
    lines = [f"### {asset['name']}", "", f"`{asset['path']}`", "",
             f"**type** {asset['asset_type']} · **size** {asset['size_bytes']:,} bytes · **status** {asset['status']}",
             "", f"[Download]({asset['file_url']})"]
    if hit.get("timecode"):
        lines += ["", f"**Matched at** {hit['timecode']} — [keyframe](/v1/assets/{asset['id']}/thumbnail?t={hit['time_s']:g})"]
    if asset.get("dependencies"):
        lines += ["", "**Dependencies**", ""]
        lines += [f"- {d['kind']}: `{d['raw_path']}`" + ("" if d["exists"] else " (missing)") for d in asset["dependencies"]]
    lines += ["", "**Metadata**", "", "```json", _json(asset["metadata"]), "```"]
    return "\n".join(lines)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, ensure_ascii=False)[:6000]


def _png_base64(image: Image.Image) -> str:
    import base64

    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()
