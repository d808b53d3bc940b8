"""The web app on a server with AUTH_MODE=cognito: the page loads (it holds no data), every API call it
makes needs the user's token, and without one the user is told to sign in, in words."""

from __future__ import annotations

from tests.test_chat_bedrock_cognito import _auth, deployed  # noqa: F401 - the Cognito + Bedrock server fixture
from tests.test_ui_browser import CHROMIUM, CHROMIUM_ARGS, _shot, _wait_status, sync_api


def test_page_is_open_but_the_api_is_not(deployed) -> None:  # noqa: ANN001, F811
    client, _, jwks = deployed
    assert client.get("/ui/").status_code == 200
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui/"
    assert client.post("/v1/search", json={"query": "dragon"}).status_code == 401
    assert client.post("/v1/search", json={"query": "dragon"}, headers=_auth(jwks)).status_code == 200


def test_search_needs_a_token_typed_into_the_page(deployed) -> None:  # noqa: ANN001, F811
    client, _, jwks = deployed
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{client.base_url}/ui/")
        page.wait_for_selector("#query textarea", timeout=30_000)
        page.fill("#query textarea", "dragon")
        page.click("#search")
        status = _wait_status(page, "Search failed")
        assert "missing bearer token" in status and "Sign in" in status
        page.get_by_text("Sign in (servers with AUTH_MODE=cognito)").click()
        page.fill("#token input", jwks.mint(jwks.access_claims(sub="artist-1")))
        page.click("#search")
        assert "results" in _wait_status(page, "results")
        assert page.locator("#gallery img").count() > 0
        _shot(page, "cognito-search")
        browser.close()


