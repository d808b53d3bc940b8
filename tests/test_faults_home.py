"""A CGCHAT_HOME that cannot be written (read-only file system, no permission, full disk) stops the real
CLI (`cgchat ingest`, `cgchat serve`) with exit code 4 and one sentence naming the directory, the cause
and the fix; never a traceback, never initdb's log.

The faults are real, not patched in: tests run as root (where chmod stops nothing), so a read-only or a
tiny tmpfs is mounted over the home inside a private mount namespace (`unshare --mount`; gone with the
process), and "no permission" runs the CLI as user nobody (`setpriv`) against a 0555 folder. Without
root, `unshare --map-root-user` gives the same namespace and a plain chmod does the rest.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SAMPLES, free_port

IS_ROOT = os.geteuid() == 0
NOBODY = 65534
EXIT_HOME = 4


def _env(home: Path, database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CLIP_MODEL_DIR", "TEXT_MODEL")}
    env.update({"CGCHAT_HOME": str(home), "VISUAL_BACKFILL": "false"})
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def _namespace_prefix() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("cannot simulate a read-only or full disk: util-linux `unshare` is not installed")
    return [unshare, "--mount", "--propagation", "private"] + ([] if IS_ROOT else ["--map-root-user"])


def _on_mount(home: Path, mount_options: str, script: str, env: dict[str, str],
              timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the shell ``script`` with a fresh tmpfs (``mount_options``) mounted over ``home``, in a mount
    namespace of its own (the mount goes with it)."""
    home.mkdir(parents=True, exist_ok=True)
    mount = f"mount -t tmpfs -o {shlex.quote(mount_options)} cgchat-fault {shlex.quote(str(home))} || exit 97\n"
    result = subprocess.run([*_namespace_prefix(), "sh", "-c", mount + script], capture_output=True, text=True,
                            env=env, timeout=timeout, check=False)
    if result.returncode == 97:
        pytest.fail(f"cannot simulate the fault here: mounting a tmpfs in a mount namespace failed: {result.stderr}")
    return result


def _cgchat(*args: str) -> str:
    return shlex.join([sys.executable, "-m", "cgchat.cli", *args])


def _cli_on_mount(home: Path, mount_options: str, args: list[str], env: dict[str, str], fill: bool = False,
                  timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``cgchat ARGS`` on a tmpfs home; ``fill`` fills it to the last byte first."""
    script = f"cat /dev/zero > {shlex.quote(str(home / 'filler'))} 2>/dev/null\n" if fill else ""
    return _on_mount(home, mount_options, script + "exec " + _cgchat(*args), env, timeout)


def _assert_clear_home_error(result: subprocess.CompletedProcess[str], home: Path, *phrases: str) -> str:
    message = " ".join(result.stderr.split())  # rich wraps long lines
    assert result.returncode == EXIT_HOME, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr and "initdb" not in result.stderr, result.stderr[-3000:]
    assert message.startswith("error:") and f"CGCHAT_HOME ({home})" in message, message
    assert "set CGCHAT_HOME to" in message, message  # says what to do about it
    for phrase in phrases:
        assert phrase in message, message
    return message


def test_read_only_home_with_the_embedded_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = _cli_on_mount(home, "ro,size=8m", ["ingest", str(SAMPLES / "dragon/docs")], _env(home))
    _assert_clear_home_error(result, home, "read-only file system", "mount it read-write")


def test_read_only_home_with_an_external_database_fails_where_the_model_is_built(db_url: str, tmp_path: Path) -> None:
    """DATABASE_URL set: the database is fine, but the text model is built into CGCHAT_HOME/models."""
    home = tmp_path / "home"
    result = _cli_on_mount(home, "ro,size=8m", ["ingest", str(SAMPLES / "dragon/docs")], _env(home / "state", db_url))
    _assert_clear_home_error(result, home / "state", "read-only file system")


def test_too_small_disk_for_the_embedded_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = _cli_on_mount(home, "size=1m", ["ingest", str(SAMPLES / "dragon/docs")], _env(home))
    _assert_clear_home_error(result, home, "full disk", "64 MB needed", "free some space")


def test_full_disk_while_building_the_model(db_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = _cli_on_mount(home, "size=2m", ["ingest", str(SAMPLES / "dragon/docs")], _env(home, db_url), fill=True)
    _assert_clear_home_error(result, home, "full disk (0 MB free)", "free some space")


def test_serve_with_a_read_only_home_stops_before_binding_the_port(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    result = _cli_on_mount(home, "ro,size=8m", ["serve", "--port", str(port)], _env(home), timeout=60)
    _assert_clear_home_error(result, home, "read-only file system")


def test_serve_with_a_full_disk(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = _cli_on_mount(home, "size=2m", ["serve", "--port", str(free_port())], _env(home), fill=True, timeout=60)
    _assert_clear_home_error(result, home, "full disk")


def test_home_this_user_may_not_write(tmp_path: Path) -> None:
    """A 0555 folder: as root, the CLI runs as nobody (root ignores permission bits)."""
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    tmp_path.chmod(0o755)  # nobody must reach the folder to be refused inside it
    prefix: list[str] = []
    if IS_ROOT:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.fail("cannot run the CLI as another user: util-linux `setpriv` is not installed")
        prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    env = _env(home)
    env["XDG_RUNTIME_DIR"] = str(home / "run")  # the test session's runtime dir is root's
    result = subprocess.run([*prefix, sys.executable, "-m", "cgchat.cli", "ingest", str(SAMPLES / "dragon/docs")],
                            capture_output=True, text=True, env=env, timeout=120, check=False)
    uid = NOBODY if IS_ROOT else os.geteuid()
    _assert_clear_home_error(result, home, f"not writable by this user (uid {uid})", "give this user write access")


def test_disk_filling_up_mid_ingest_stops_the_run_then_it_resumes(tmp_path: Path) -> None:
    """The embedded database's disk fills up while indexing: the run stops at the first rejected write
    (not one "skipped" line per file left), keeps what it wrote, and once there is room again the same
    command finishes the job."""
    home, library = tmp_path / "home", tmp_path / "library"
    for n in range(6):
        shutil.copytree(SAMPLES, library / f"show{n}")
    filler = shlex.quote(str(home / "filler"))
    script = "\n".join([
        _cgchat("ingest", str(SAMPLES / "dragon/docs")) + " >/dev/null || exit 98",  # database up, on a roomy disk
        f"free=$(df --output=avail -B1 {shlex.quote(str(home))} | tail -1)",
        f"head -c $((free - 1000000)) /dev/zero > {filler}",  # leave 1 MB: full well before the end
        _cgchat("ingest", str(library)) + "; echo \"full-run-exit=$?\" >&2",
        f"rm {filler}",
        "exec " + _cgchat("ingest", str(library), "--json"),
    ])
    env = {**_env(home), "TEXT_MODEL": "minilm-int8"}  # the packaged model: nothing to build on the small disk
    result = _on_mount(home, "size=66m", script, env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    full_run = result.stderr.split("full-run-exit=")[0]
    message = " ".join(full_run.split())
    assert "full-run-exit=4" in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in full_run and "rejected it" not in full_run, full_run[-3000:]
    assert "the database has no room for more" in message and "No space left on device" in message, message
    assert f"CGCHAT_HOME ({home})" in message and "then run the same command again" in message, message
    kept = int(message.split(" files were indexed and are kept")[0].rsplit(" ", 1)[1])
    summary = json.loads(result.stdout)
    total = sum(1 for p in library.rglob("*") if p.is_file())
    assert summary["skipped"] == [] and summary["scanned"] == total
    assert summary["unchanged"] == kept and summary["added"] == total - kept  # nothing written twice, none lost
