"""Visual search over real HTTP: the server's background backfill, POST /v1/search with a picture,
chat that searches pictures for questions about looks, thumbnails for every visual asset type."""

from __future__ import annotations

import base64
import io
import shutil
import time
import uuid
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import SAMPLES, LiveServer, _create_database
from tests.test_chat_api import stream

pytest.importorskip("torch")  # the tiny CLIP is built with transformers (test dependency)


@pytest.fixture(scope="module")
def visual_api(pg_server_url, session_home, encoder, tiny_clip_dir, tmp_path_factory):  # noqa: ANN001, ANN201
    """A server with a CLIP model over a library indexed *before* the model was there: nothing is
    embedded when it starts, so whatever visual search finds was embedded by its backfill."""
    from cgchat.db import migrate
    from cgchat.db.connection import open_connection
    from cgchat.ingest.pipeline import Ingestor
    from cgchat.settings import get_settings

    library = tmp_path_factory.mktemp("visuallib") / "library"
    shutil.copytree(SAMPLES, library)
    url = _create_database(pg_server_url, f"visual_api_{uuid.uuid4().hex[:8]}")  # one per module that uses it
    migrate(url)
    with open_connection(url) as conn:
        Ingestor(conn, encoder).run([library])
        assert conn.execute("SELECT count(*) AS n FROM files WHERE visual_status = 'pending'").fetchone()["n"] == 22
    mp = pytest.MonkeyPatch()
    for key, value in {"DATABASE_URL": url, "CGCHAT_HOME": str(session_home), "LLM_PROVIDER": "none",
                       "CLIP_MODEL_DIR": str(tiny_clip_dir), "VISUAL_BACKFILL_POLL_S": "0.2"}.items():
        mp.setenv(key, value)
    get_settings.cache_clear()
    with LiveServer() as server, httpx.Client(base_url=server.base_url, timeout=60) as client:
        client.library = library  # type: ignore[attr-defined]
        client.db_url = url  # type: ignore[attr-defined]
        _wait_for_backfill(url)
        yield client
    mp.undo()
    get_settings.cache_clear()


def _wait_for_backfill(url: str, timeout: float = 60) -> None:
    from cgchat.db.connection import open_connection

    deadline = time.monotonic() + timeout
    with open_connection(url) as conn:
        while time.monotonic() < deadline:
            left = conn.execute("SELECT count(*) AS n FROM files WHERE visual_status = 'pending'").fetchone()["n"]
            conn.commit()
            if left == 0:
                return
            time.sleep(0.1)
    raise AssertionError(f"the backfill left {left} assets pending")


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_backfill_embedded_everything(visual_api: httpx.Client) -> None:
    from cgchat.db.connection import open_connection

    with open_connection(visual_api.db_url) as conn:
        states = conn.execute("SELECT visual_status, count(*) AS n FROM files WHERE visual_status IS NOT NULL"
                              " GROUP BY 1").fetchall()
    assert {r["visual_status"]: r["n"] for r in states} == {"embedded": 22}
    config = visual_api.get("/v1/config").json()
    assert config["visual_model"] == "test/tiny-clip-b32" and "visual" in config["search_modes"]
    assert visual_api.get("/healthz").json()["visual_model"] == "test/tiny-clip-b32"


def test_search_by_uploaded_picture(visual_api: httpx.Client) -> None:
    leaf = visual_api.library / "forest/assets/env/oak/tex/bark_albedo.jpg"
    for encoded in (_b64(leaf), "data:image/jpeg;base64," + _b64(leaf)):
        r = visual_api.post("/v1/search", json={"image_base64": encoded, "limit": 3})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["retrievers"] == ["visual"] and body["mode"] == "visual"
        assert body["visual_model"] == "test/tiny-clip-b32"
        assert body["results"][0]["name"] == "bark_albedo.jpg" and body["results"][0]["scores"]["visual"] > 0.999


def test_search_visual_text_and_like_asset(visual_api: httpx.Client) -> None:
    r = visual_api.post("/v1/search", json={"query": "turntable of a dragon", "mode": "visual", "limit": 40})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    videos = [x for x in results if x["type"] == "video"]
    assert videos and all(v["timecode"] and v["time_s"] is not None for v in videos)
    assert all(x["timecode"] is None for x in results if x["type"] != "video")
    # Every picture-bearing hit says where its thumbnail is; a video's is its matching keyframe.
    assert all(x["thumbnail_url"] == f"/v1/assets/{x['id']}/thumbnail" for x in results if x["type"] == "image")
    assert all(v["thumbnail_url"].endswith(f"?t={v['time_s']:g}") for v in videos)
    first = results[0]["id"]
    like = visual_api.post("/v1/search", json={"like_asset_id": first, "limit": 5}).json()
    assert like["retrievers"] == ["visual"] and like["results"]
    assert first not in {x["id"] for x in like["results"]}
    hybrid = visual_api.post("/v1/search", json={"query": "dragon turntable"}).json()
    assert hybrid["retrievers"] == ["semantic", "keyword", "visual"]


def test_bad_pictures_are_4xx(visual_api: httpx.Client) -> None:
    not_image = base64.b64encode(b"GIF89a but not really").decode()
    r = visual_api.post("/v1/search", json={"image_base64": not_image})
    assert r.status_code == 400 and "cannot be read" in r.json()["error"]["message"]
    r = visual_api.post("/v1/search", json={"image_base64": "%%%"})
    assert r.status_code == 400 and "base64" in r.json()["error"]["message"]
    r = visual_api.post("/v1/search", json={"image_base64": _b64(visual_api.library / "forest/assets/env/oak/tex/bark_albedo.jpg"),
                                            "mode": "keyword"})
    assert r.status_code == 400 and "searches words" in r.json()["error"]["message"]
    bomb = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(bomb, "PNG")  # 144 MP of black: a tiny file, a huge decode
    r = visual_api.post("/v1/search", json={"image_base64": base64.b64encode(bomb.getvalue()).decode()})
    assert r.status_code == 400 and "12000x12000; at most 100 megapixels" in r.json()["error"]["message"]
    assert visual_api.get("/healthz").json()["status"] == "ok"


def test_chat_searches_pictures_for_questions_about_looks(visual_api: httpx.Client) -> None:
    response, events = stream(visual_api, "/v1/chat/stream", {"query": "renders that look like a forest at dusk"})
    assert response.status_code == 200
    meta = next(data for name, data in events if name == "meta")
    assert meta["retrievers"] == ["semantic", "keyword", "visual"]
    sources = next(data for name, data in events if name == "sources")["sources"]
    assert any("visual" in s["matched_by"] for s in sources)
    for source in sources:
        if source["type"] in ("image", "video"):
            assert source["thumbnail_url"].startswith(f"/v1/assets/{source['asset_id']}/thumbnail")
        if source["type"] == "video" and source["time_s"] is not None:
            assert source["thumbnail_url"].endswith(f"?t={source['time_s']:g}") and source["timecode"]

    _, plain = stream(visual_api, "/v1/chat/stream", {"query": "which files use brick_albedo.png?"})
    assert next(data for name, data in plain if name == "meta")["retrievers"] == ["semantic", "keyword"]


def test_thumbnails_for_every_visual_type(visual_api: httpx.Client) -> None:
    rows = {r["name"]: r for r in visual_api.post("/v1/search", json={"query": "x", "mode": "visual", "limit": 50})
            .json()["results"]}
    for name in ("sh020_beauty_v002.exr", "castle_turntable_v001.mov", "forest_dusk_v002_16bit.png", "leaf_alpha.png"):
        r = visual_api.get(f"/v1/assets/{rows[name]['id']}/thumbnail")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", name
        image = Image.open(io.BytesIO(r.content))
        assert 0 < max(image.size) <= 256 and image.mode == "RGB", name
    video = rows["castle_turntable_v001.mov"]["id"]
    early, late = (visual_api.get(f"/v1/assets/{video}/thumbnail", params={"t": t}).content for t in (0.2, 2.8))
    assert early != late  # a turntable: the frame at 2.8 s is not the frame at 0.2 s
    assert visual_api.get(f"/v1/assets/{video}/thumbnail", params={"t": -1}).status_code == 422
    blend = rows["castle_env_v002.blend"]["id"]
    assert visual_api.get(f"/v1/assets/{blend}/thumbnail").content.startswith(b"\x89PNG")
