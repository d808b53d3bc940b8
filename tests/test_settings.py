"""Settings: one typed object from the environment, and its documentation."""

from __future__ import annotations

import re

from cgchat.settings import Settings
from tests.conftest import REPO


def test_env_example_lists_every_setting() -> None:
    """`.env.example` is the settings reference users copy; it must not drift from the Settings object."""
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.MULTILINE))
    missing = {name.upper() for name in Settings.model_fields} - listed
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_client_ids_accept_commas_or_json(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("COGNITO_APP_CLIENT_IDS", "abc, def")
    assert Settings().cognito_app_client_ids == ["abc", "def"]
    monkeypatch.setenv("COGNITO_APP_CLIENT_IDS", '["xyz"]')
    assert Settings().cognito_app_client_ids == ["xyz"]
