"""The web app with a CLIP model installed (the tiny test CLIP): visual mode is offered, and a picture
uploaded for "find similar" brings back the asset it was taken from."""

from __future__ import annotations

from tests.test_ui_browser import CHROMIUM, CHROMIUM_ARGS, _shot, _wait_status, sync_api
from tests.test_visual_api import visual_api  # noqa: F401 - a server whose backfill embedded the samples


def test_find_similar_by_uploaded_picture(visual_api, tmp_path) -> None:  # noqa: ANN001, F811
    from PIL import Image

    original = visual_api.library / "dragon/assets/env/castle/tex/brick_albedo.png"
    copy = tmp_path / "my reference.jpg"
    Image.open(original).convert("RGB").resize((200, 200)).save(copy, quality=90)  # a resized, re-encoded copy
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{visual_api.base_url}/ui/")
        page.wait_for_selector("#mode label:has-text('visual')", timeout=30_000)
        assert "install-clip" not in page.inner_text("#visual-hint")
        page.set_input_files("#picture input[type=file]", str(copy))
        page.wait_for_selector("#picture img", timeout=15_000)
        page.click("#search")
        status = _wait_status(page, "results")
        assert "visual" in status
        first = page.locator("#gallery .caption-label, #gallery [class*=caption]").first.inner_text()
        assert first.startswith("brick_albedo.png"), first
        _shot(page, "find-similar")
        browser.close()
