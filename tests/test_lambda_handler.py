"""The Lambda entry point (lambda_function.handler) fed real API Gateway REST v1.0 / HTTP API v2.0 events."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_chat_api import parse_sse

EVENTS = Path(__file__).parent / "fixtures" / "apigw"


def event(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def lam(samples_db, session_home):
    """lambda_function with the environment of a deployment over the indexed samples; shut down after."""
    import sys

    from cgchat.settings import get_settings

    mp = pytest.MonkeyPatch()
    mp.setenv("DATABASE_URL", samples_db)
    mp.setenv("CGCHAT_HOME", str(session_home))
    mp.setenv("AUTH_MODE", "off")
    mp.setenv("LLM_PROVIDER", "none")
    mp.syspath_prepend(str(REPO))
    get_settings.cache_clear()
    import lambda_function

    lambda_function.shutdown()  # a clean container
    yield lambda_function
    lambda_function.shutdown()
    assert lambda_function._APP is None
    mp.undo()
    sys.modules.pop("lambda_function", None)
    get_settings.cache_clear()


def header(response: dict, name: str) -> str:
    """A response header from either payload format (v1: multiValueHeaders, v2: headers)."""
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name:
            return value
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name:
            return values[0]
    raise KeyError(name)


def body_text(response: dict) -> str:
    body = response["body"]
    return base64.b64decode(body).decode() if response.get("isBase64Encoded") else body


def assert_chat_stream(response: dict) -> list[tuple[str, dict]]:
    assert response["statusCode"] == 200, response
    assert header(response, "content-type").startswith("text/event-stream")
    assert header(response, "cache-control") == "no-cache"
    assert header(response, "x-accel-buffering") == "no"
    events = parse_sse(body_text(response))
    names = [name for name, _ in events]
    assert names[0] == "meta" and names[1] == "sources" and names[-1] == "done", names
    assert "token" in names and names.index("token") > 1
    sources = events[1][1]["sources"]
    assert sources and all(s["type"] == "blend" for s in sources)
    answer = "".join(data["text"] for name, data in events if name == "token")
    assert "Cycles" in answer
    return events


def test_rest_v1_chat_with_stage_prefix(lam) -> None:
    ev = event("rest_v1_chat")
    assert ev["path"] == "/prod/chat" and ev["requestContext"]["stage"] == "prod"
    assert_chat_stream(lam.handler(ev, None))


def test_http_v2_chat_stream(lam) -> None:
    events = assert_chat_stream(lam.handler(event("http_v2_chat"), None))
    assert events[0][1]["provider"] == "none"


def test_rest_v1_search(lam) -> None:
    response = lam.handler(event("rest_v1_search"), None)
    assert response["statusCode"] == 200, response
    assert header(response, "content-type").startswith("application/json")
    body = json.loads(body_text(response))
    assert body["mode"] == "hybrid" and len(body["results"]) == 5
    assert body["results"][0]["name"] == "dragon_turntable_v003.mp4"


def test_http_v2_healthz(lam) -> None:
    response = lam.handler(event("http_v2_healthz"), None)
    assert response["statusCode"] == 200, response
    body = json.loads(body_text(response))
    assert body["status"] == "ok" and body["database"] is True and body["assets"] > 20


@pytest.mark.parametrize("name", ["rest_v1_chat", "http_v2_chat", "rest_v1_search"])
def test_malformed_json_is_a_422_json_error(lam, name: str) -> None:
    ev = event(name)
    ev["body"] = '{"query": "dragon",'
    response = lam.handler(ev, None)
    assert response["statusCode"] == 422, response
    assert header(response, "content-type").startswith("application/json")
    error = json.loads(body_text(response))["error"]
    assert error["code"] and error["message"]


@pytest.mark.parametrize("name", ["rest_v1_search", "http_v2_chat"])
def test_base64_encoded_body(lam, name: str) -> None:
    ev = event(name)
    ev["body"] = base64.b64encode(ev["body"].encode()).decode()
    ev["isBase64Encoded"] = True
    response = lam.handler(ev, None)
    assert response["statusCode"] == 200, response
    if name == "http_v2_chat":
        assert_chat_stream(response)
    else:
        assert json.loads(body_text(response))["results"]


def test_app_and_pool_are_created_once(lam) -> None:
    lam.handler(event("http_v2_healthz"), None)
    app, startups = lam._APP, lam.STARTUPS
    database = app.state.database
    for name in ("http_v2_healthz", "rest_v1_search", "rest_v1_chat"):
        assert lam.handler(copy.deepcopy(event(name)), None)["statusCode"] == 200
    assert lam._APP is app and app.state.database is database and lam.STARTUPS == startups
    assert not database.pool.closed


def test_stage_is_not_stripped_from_a_real_route(lam) -> None:
    """REST `path` excludes the stage when requestContext.path has it: a stage named like a route segment."""
    ev = event("rest_v1_search")
    ev["requestContext"]["stage"] = "v1"
    ev["requestContext"]["path"] = "/v1/v1/search"
    assert lam.handler(ev, None)["statusCode"] == 200


def test_unknown_route_is_404(lam) -> None:
    ev = event("http_v2_healthz")
    ev["rawPath"] = ev["requestContext"]["http"]["path"] = "/nope"
    assert lam.handler(ev, None)["statusCode"] == 404
