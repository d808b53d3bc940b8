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


def test_serve_stops_embedded_postgres_on_sigterm() -> None:
    """uvicorn re-raises SIGTERM after its graceful shutdown (atexit never runs), so the app's own
    shutdown must release the embedded server, or a postmaster would outlive every `cgchat serve`."""
    import json as _json
    import signal
    import time

    import httpx

    from tests.conftest import free_port

    home = Path(tempfile.mkdtemp(prefix="cgchat-sigterm-"))
    home.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["CGCHAT_HOME"] = str(home)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cgchat.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.2)
        pid_file = home / "pgdata" / "postmaster.pid"
        assert pid_file.exists()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while pid_file.exists() and time.monotonic() < deadline:  # postmaster removes it when it stops
            time.sleep(0.2)
        assert not pid_file.exists(), "embedded PostgreSQL is still running after SIGTERM"
        assert _json.loads((home / "pgdata" / ".handle_pids.json").read_text()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(home, ignore_errors=True)
