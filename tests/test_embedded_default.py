"""With no DATABASE_URL, the CLI starts its own embedded Postgres under CGCHAT_HOME and keeps state there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import SAMPLES


def test_cli_without_database_url_uses_embedded_postgres() -> None:
    home = Path(tempfile.mkdtemp(prefix="cgchat-embedded-"))
    home.chmod(0o755)  # as root, pgserver runs Postgres as its own user, which must reach the data dir
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["CGCHAT_HOME"] = str(home)
    try:
        ingest = _run(env, "ingest", str(SAMPLES / "forest"), "--json")
        assert ingest.returncode == 0, ingest.stderr
        assert json.loads(ingest.stdout)["added"] > 5
        assert (home / "pgdata" / "PG_VERSION").read_text().strip() == "16"
        found = json.loads(_run(env, "search", "oak tree", "--json", "--limit", "3").stdout)
        assert found[0]["name"].startswith("tree_oak_v001")
        again = json.loads(_run(env, "ingest", str(SAMPLES / "forest"), "--json").stdout)
        assert again["added"] == 0 and again["unchanged"] == json.loads(ingest.stdout)["added"]
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cgchat.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)
