"""The web app in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright) against the
real server over loopback: chat streams token by token and fills the gallery, an asset opens, a
keyword search with a filter runs, sessions reopen and delete. Screenshots go to test-artifacts/."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS, live_server

CHROMIUM = Path("/usr/bin/chromium")
# No network beyond loopback here: keep Chromium from calling home (refused connections, slow starts).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI must install Debian's chromium (apt-get install chromium) for the browser tests")
    pytest.skip("no /usr/bin/chromium on this machine (apt-get install chromium)", allow_module_level=True)


# The model's answer, streamed by a local OpenAI-compatible server with pauses between pieces, so the
# browser has time to show each piece arrive (a no-LLM answer can arrive in one repaint under load).
ANSWER = ["Three Cycles scenes: ", "sh020_lighting_v002.blend [1], ", "dragon_flight_sh010_v001.blend [2] ",
          "and dragon_model_v003.blend [3]", "."]


@pytest.fixture(scope="module")
def ui_server(samples_db: str, session_home: Path) -> Iterator[str]:
    from tests.fakes.openai_server import FakeOpenAI, reply

    with FakeOpenAI().running() as llm:
        script = reply(*ANSWER)
        for n in range(len(ANSWER) - 1, 0, -1):
            script.insert(n, ("sleep", 0.25))
        llm.enqueue(script)  # the last script repeats: every chat turn gets this answer
        with live_server({"DATABASE_URL": samples_db, "CGCHAT_HOME": str(session_home), "LLM_PROVIDER": "openai",
                          "LLM_BASE_URL": llm.url, "CLIP_MODEL_DIR": str(session_home / "no-clip-here")}) as server:
            yield server.base_url


@pytest.fixture()
def page(ui_server: str) -> Iterator:  # noqa: ANN201
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{ui_server}/ui/")
        page.wait_for_selector("#question textarea", timeout=30_000)
        yield page
        browser.close()


def _shot(page, name: str) -> None:  # noqa: ANN001
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"ui-{name}.png"), full_page=True)


def _wait_status(page, text: str, timeout: float = 30) -> str:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = page.inner_text("#status")
        if text in status:
            return status
        time.sleep(0.05)
    raise AssertionError(f"status never said {text!r}; it says {page.inner_text('#status')!r}")


def test_chat_streams_fills_gallery_and_opens_an_asset(page) -> None:  # noqa: ANN001
    assert page.locator("#gallery img").count() == 0
    page.fill("#question textarea", "Show me Blender files rendered with Cycles")
    page.click("#send")
    seen: list[int] = []
    deadline = time.monotonic() + 30
    while "Answered from" not in page.inner_text("#status"):
        assert time.monotonic() < deadline, "the answer never finished"
        seen.append(len(page.inner_text("#chatbot")))
        time.sleep(0.02)
    answer = page.inner_text("#chatbot")
    assert "".join(ANSWER) in answer
    # Streamed: the answer was seen at several lengths on its way, not only when complete.
    assert len({n for n in seen if 0 < n < len(answer)}) >= 3, sorted(set(seen))
    # Citations are links to the cited assets.
    citation = page.locator("#chatbot a", has_text="1").first
    assert "/v1/assets/" in citation.get_attribute("href")
    # The gallery shows the sources (real .blend previews), and a click opens the detail view.
    assert page.locator("#gallery img").count() == 3
    _shot(page, "chat")
    page.locator("#gallery img").first.click()
    page.wait_for_function("document.querySelector('#detail').innerText.includes('Metadata')", timeout=15_000)
    detail = page.inner_text("#detail")
    assert "sh020_lighting_v002.blend" in detail and "Dependencies" in detail and "castle_env_v002.blend" in detail
    assert page.locator("#detail a", has_text="Download").get_attribute("href").endswith("/file")
    _shot(page, "detail")
    # The session was created and is listed.
    page.click("#sessions input")
    assert page.locator("li[data-testid=dropdown-option]", has_text="Show me Blender files").count() >= 1


def test_keyword_search_with_a_type_filter(page) -> None:  # noqa: ANN001
    page.fill("#query textarea", "dragon")
    page.locator("#mode label", has_text="keyword").click()
    page.click("#type-filter input")
    page.keyboard.type("video")
    page.keyboard.press("Enter")
    page.click("#search")
    status = _wait_status(page, "results")
    assert "keyword" in status and "video" in status
    captions = page.locator("#gallery .caption-label, #gallery [class*=caption]").all_inner_texts()
    assert captions and all("video" in c for c in captions), captions
    assert any("dragon_turntable_v003.mp4" in c for c in captions)
    _shot(page, "keyword-search")


def test_visual_mode_is_off_without_clip_and_errors_are_words(page) -> None:  # noqa: ANN001
    page.wait_for_function("document.querySelector('#visual-hint').innerText.includes('install-clip')",
                           timeout=15_000)
    assert page.locator("#mode label", has_text="visual").count() == 0
    assert not page.get_by_text("Sign in (servers with AUTH_MODE=cognito)").is_visible()  # auth is off here
    page.fill("#query textarea", "dragon")
    page.fill("#resolution-filter textarea", "huge")
    page.click("#search")
    status = _wait_status(page, "Search failed")
    assert "unknown resolution 'huge'" in status and "Traceback" not in page.content()


def test_sessions_reopen_and_delete(page) -> None:  # noqa: ANN001
    # A question of its own: other tests (load, fuzz) save chat sessions in the same samples database.
    question = f"dragon turntable videos {uuid.uuid4().hex[:8]}"
    page.fill("#question textarea", question)
    page.click("#send")
    _wait_status(page, "Answered from")
    page.click("#new-session")
    _wait_status(page, "New session")
    assert question not in page.inner_text("#chatbot")
    page.click("#sessions input")
    page.locator("li[data-testid=dropdown-option]", has_text=question).first.click()
    _wait_status(page, "Reopened a session of 1 turns")
    assert question in page.inner_text("#chatbot")
    page.click("#delete-session")
    _wait_status(page, "Session deleted")
    page.click("#sessions input")
    assert page.locator("li[data-testid=dropdown-option]", has_text=question).count() == 0


def test_screenshot_for_the_readme(page, tmp_path: Path) -> None:  # noqa: ANN001
    """The README's picture comes from this run (copied to docs/ by hand when the UI changes)."""
    page.fill("#question textarea", "Show me Blender files rendered with Cycles")
    page.click("#send")
    _wait_status(page, "Answered from")
    page.screenshot(path=str(tmp_path / "web-app.png"))
    assert (tmp_path / "web-app.png").stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(tmp_path / "web-app.png", ARTIFACTS / "web-app.png")
