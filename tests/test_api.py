"""The HTTP API served by uvicorn on a loopback port, called over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LiveServer


@pytest.fixture(scope="module")
def api(samples_db, session_home):  # noqa: ANN001, ANN201
    mp = pytest.MonkeyPatch()
    from cgchat.settings import get_settings

    mp.setenv("DATABASE_URL", samples_db)
    mp.setenv("CGCHAT_HOME", str(session_home))
    get_settings.cache_clear()
    with LiveServer() as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client
    mp.undo()
    get_settings.cache_clear()


def test_healthz(api: httpx.Client) -> None:
    body = api.get("/healthz").json()
    assert body["status"] == "ok" and body["database"] is True and body["assets"] > 20
    assert body["text_model"]


def test_search_returns_cli_shaped_items(api: httpx.Client) -> None:
    r = api.post("/v1/search", json={"query": "dragon turntable", "limit": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["mode"] == "hybrid" and len(body["results"]) == 5
    top = body["results"][0]
    assert top["name"] == "dragon_turntable_v003.mp4" and top["matched_by"] == ["semantic", "keyword"]
    assert {"id", "path", "name", "type", "score", "matched_by", "metadata"} <= set(top)


def test_search_filters_over_http(api: httpx.Client) -> None:
    r = api.post("/v1/search", json={"query": "castle", "type": "video", "mode": "keyword"})
    assert r.status_code == 200
    assert [i["name"] for i in r.json()["results"]] == ["castle_turntable_v001.mov"]
    r = api.post("/v1/search", json={"query": "scene", "engine": ["eevee"], "auto_filters": False, "limit": 20})
    assert {i["name"] for i in r.json()["results"]} == {"castle_env_v002.blend", "tree_oak_v001.blend"}


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        ({"query": ""}, 400, "query is empty"),
        ({}, 400, "query is empty"),
        ({"image_base64": "not base64!"}, 400, "base64"),
        ({"image_base64": "aGVsbG8="}, 503, "install-clip"),  # a picture, but no visual model installed
        ({"query": "red car", "mode": "visual"}, 503, "cgchat models install-clip"),
        ({"like_asset_id": 0}, 422, "like_asset_id"),
        ({"query": "x" * 10_000}, 422, "query"),
        ({"query": "dragon", "mode": "fuzzy"}, 422, "mode"),
        ({"query": "dragon", "limit": 0}, 422, "limit"),
        ({"query": "dragon", "limit": 5000}, 422, "limit"),
        ({"query": "dragon", "type": "sound"}, 422, "type"),
        ({"query": "dragon", "resolution": "huge"}, 400, "resolution"),
        ({"query": "dragon", "unknown_field": 1}, 422, "unknown_field"),
        ({"query": "   "}, 400, "empty"),
        ({"query": "dragon\u0000"}, 400, "NUL"),
    ],
)
def test_bad_input_is_a_clear_4xx(api: httpx.Client, payload: dict, status: int, fragment: str) -> None:
    r = api.post("/v1/search", json=payload)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert fragment in error["message"] and error["code"]
    assert "Traceback" not in r.text


def test_malformed_json_is_422_not_500(api: httpx.Client) -> None:
    r = api.post("/v1/search", content=b'{"query": "dragon"', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert api.get("/v1/nope").status_code == 404
    assert api.get("/healthz").status_code == 200  # still serving


def test_interactive_docs_need_no_internet(api: httpx.Client) -> None:
    page = api.get("/docs")
    assert page.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert api.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert api.get("/docs-assets/swagger-ui.css").status_code == 200
    assert "/v1/chat/stream" in api.get("/openapi.json").json()["paths"]
