"""The Blender add-on (blender_addon/): its zip, its HTTP client against the real server (plain
Python, no bpy), and the add-on itself end to end inside a headless Blender (tests/blender/).

The Blender run happens twice: in the ``blender`` binary (Debian's 3.4 in CI; BLENDER_BIN picks another
one) and in Blender 4.2 as a Python module (PyPI ``bpy`` in .venv-bpy, made by ``make test``;
CGCHAT_BPY_PYTHON picks another), so both the 3.x and the 4.x APIs are exercised. Without one the test
is skipped, except under CI (the CI variable set), where it fails.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import pytest

from tests.conftest import ARTIFACTS, REPO, SAMPLES, LiveServer, free_port

ADDON_SRC = REPO / "blender_addon"
PACKAGE = ADDON_SRC / "cgchat_blender"
RUNNER = REPO / "tests" / "blender" / "run_addon_tests.py"
BLENDER_TIMEOUT_S = 180


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def build_zip() -> ModuleType:
    return _load(ADDON_SRC / "build_zip.py", "cgchat_blender_build_zip")


@pytest.fixture(scope="module")
def client() -> ModuleType:
    """The add-on's HTTP module, imported by plain Python: it must not need bpy."""
    return _load(PACKAGE / "client.py", "cgchat_blender_client")


@pytest.fixture(scope="module")
def addon_zip(build_zip: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_zip.build(tmp_path_factory.mktemp("addon") / "cgchat_blender.zip")


@pytest.fixture(scope="module")
def server(samples_db: str, session_home: Path) -> Iterator[str]:
    """The real API (no LLM) over the indexed samples, on a loopback port."""
    from cgchat.settings import get_settings

    mp = pytest.MonkeyPatch()
    mp.setenv("DATABASE_URL", samples_db)
    mp.setenv("CGCHAT_HOME", str(session_home))
    mp.setenv("LLM_PROVIDER", "none")
    mp.setenv("AUTH_MODE", "off")
    get_settings.cache_clear()
    try:
        with LiveServer() as live:
            yield live.base_url
    finally:
        mp.undo()
        get_settings.cache_clear()


# ---------------------------------------------------------------------- the zip


def test_zip_has_the_package_folder_blender_expects(
    addon_zip: Path, build_zip: ModuleType, tmp_path: Path
) -> None:
    with zipfile.ZipFile(addon_zip) as zf:
        names = zf.namelist()
        init = zf.read("cgchat_blender/__init__.py").decode()
    assert all(n.startswith("cgchat_blender/") for n in names), names
    expected = {
        f"cgchat_blender/{m}.py"
        for m in (
            "__init__",
            "client",
            "jobs",
            "operators",
            "ui",
            "previews",
            "preferences",
            "properties",
            "importers",
        )
    }
    assert expected <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    bl_info = next(
        ast.literal_eval(node.value)
        for node in ast.parse(init).body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "bl_info"
    )
    assert bl_info["blender"] == (3, 4, 0) and bl_info["name"] and len(bl_info["version"]) == 3
    # the same sources give the same bytes
    again = build_zip.build(tmp_path / "again.zip")
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(addon_zip.read_bytes()).digest()


def test_build_zip_command_line_writes_dist_by_default(build_zip: ModuleType, tmp_path: Path) -> None:
    assert build_zip.DEFAULT_OUT == REPO / "dist" / "cgchat_blender.zip"
    out = tmp_path / "sub" / "x.zip"
    assert build_zip.main(["--out", str(out)]) == 0 and zipfile.is_zipfile(out)


def test_http_module_has_no_blender_imports() -> None:
    tree = ast.parse((PACKAGE / "client.py").read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not imported & {"bpy", "mathutils", "requests", "httpx"}, imported
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level], (
        "client.py must stand alone"
    )


# ---------------------------------------------------------------------- the HTTP client, live


def test_client_searches_and_fetches_from_the_real_server(
    client: ModuleType, server: str, tmp_path: Path
) -> None:
    api = client.Client(server + "/", token="", timeout=30)
    assert api.health()["status"] == "ok"
    reply = api.search("props library", limit=5)
    top = reply["results"][0]
    assert top["name"] == "props_library_v001.blend" and top["type"] == "blend"
    assert {"Barrel", "Crate", "Lantern"} <= {o["name"] for o in top["metadata"]["blend"]["objects"]}
    videos = api.search("dragon turntable", asset_type="video", limit=5)["results"]
    assert videos and {r["type"] for r in videos} == {"video"}
    assert api.asset(top["id"])["file_url"] == f"/v1/assets/{top['id']}/file"

    thumb = api.thumbnail(top["id"])
    assert thumb.startswith(b"\x89PNG") and client.image_suffix(thumb) == ".png"
    doc = api.search("shot list", asset_type="document", limit=1)["results"][0]
    assert api.thumbnail(doc["id"]) is None  # 404: no preview, not an error

    source = SAMPLES / "dragon" / "assets" / "props" / "props_library_v001.blend"
    dest = api.download(top["id"], str(tmp_path / "dl" / "props.blend"))
    assert Path(dest).read_bytes() == source.read_bytes()
    assert [p.name for p in (tmp_path / "dl").iterdir()] == ["props.blend"]  # no .part left behind

    # fetch_file: the indexed path when it is on this machine, else a cached download reused
    assert (
        client.fetch_file(api, top["id"], top["name"], top["path"], top["size_bytes"], str(tmp_path))
        == top["path"]
    )
    cached = client.fetch_file(
        api, top["id"], top["name"], top["path"], top["size_bytes"], str(tmp_path), prefer_local=False
    )
    assert cached == client.cached_file_path(str(tmp_path), server, top["id"], top["name"])
    assert Path(cached).read_bytes() == source.read_bytes()
    stamp = os.stat(cached).st_mtime_ns
    time.sleep(0.01)
    assert (
        client.fetch_file(
            api, top["id"], top["name"], top["path"], top["size_bytes"], str(tmp_path), prefer_local=False
        )
        == cached
    )
    assert os.stat(cached).st_mtime_ns == stamp

    # a non-ASCII file name survives the trip
    ref = next(
        r
        for r in api.search("dragon wing reference", asset_type="image", limit=10)["results"]
        if r["name"] == "référence dragon ailes.jpg"
    )
    got = client.fetch_file(
        api, ref["id"], ref["name"], ref["path"], ref["size_bytes"], str(tmp_path), prefer_local=False
    )
    assert (
        Path(got).name == "référence dragon ailes.jpg"
        and Path(got).read_bytes() == Path(ref["path"]).read_bytes()
    )


def test_client_turns_server_errors_into_messages(client: ModuleType, server: str) -> None:
    api = client.Client(server)
    with pytest.raises(client.ApiError) as missing:
        api.asset(987654)
    assert missing.value.status == 404 and missing.value.code == "http_error"
    assert str(missing.value) == "server error 404 (http_error): no asset with id 987654"
    with pytest.raises(client.ApiError) as invalid:
        api.search("dragon", limit=0)
    assert (
        invalid.value.status == 422
        and invalid.value.code == "invalid_request"
        and "limit" in str(invalid.value)
    )
    with pytest.raises(client.ApiError, match="unknown search mode"):
        api.search("dragon", mode="fuzzy")
    with pytest.raises(client.ApiError, match="not valid"):
        client.Client("localhost:8000")
    with pytest.raises(client.ApiError, match="not valid"):
        client.Client("ftp://example.org")


def test_client_reports_unreachable_and_silent_servers(client: ModuleType) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(client.ApiError, match=rf"cannot reach the cgchat server at http://127.0.0.1:{port}"):
        client.Client(f"http://127.0.0.1:{port}", timeout=5).health()
    with socket.socket() as silent:  # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        started = time.monotonic()
        with pytest.raises(client.ApiError, match=r"did not answer within 0.3 s"):
            client.Client(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3).health()
        assert time.monotonic() - started < 5


class _Recorder(BaseHTTPRequestHandler):
    """/v1/search needs 'Bearer tok'; /v1/assets/1/file redirects (as S3 assets do) to /s3/object;
    /broken answers a proxy's HTML 502; /v1/assets/2 answers 200 with HTML."""

    seen: ClassVar[list[tuple[str, str | None]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        if self.path == "/v1/assets/1/file":
            self._send(302, b"", Location="/s3/object?X-Amz-Signature=abc")
        elif self.path.startswith("/s3/object"):
            self._send(200, b"file bytes", "application/octet-stream")
        elif self.path == "/v1/assets/2":
            self._send(200, b"<html>login page</html>", "text/html")
        else:
            self._send(502, b"<html><h1>502 Bad Gateway</h1></html>", "text/html")

    def do_POST(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Authorization") != "Bearer tok":
            body = {"error": {"code": "unauthorized", "message": "missing or invalid token"}}
            self._send(401, json.dumps(body).encode())
        else:
            self._send(200, json.dumps({"results": []}).encode())


@pytest.fixture()
def recorder() -> Iterator[str]:
    _Recorder.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_client_sends_the_token_but_not_to_redirects(
    client: ModuleType, recorder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # a studio proxy must not catch loopback calls
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    with pytest.raises(client.ApiError) as denied:
        client.Client(recorder, token="").search("x")
    assert denied.value.status == 401 and "missing or invalid token" in str(denied.value)
    assert "token in the cgchat add-on preferences" in str(denied.value)
    assert client.Client(recorder, token=" tok ").search("x") == {"results": []}
    assert _Recorder.seen[-1] == ("/v1/search", "Bearer tok")

    path = client.Client(recorder, token="tok").download(1, str(tmp_path / "f.bin"))
    assert Path(path).read_bytes() == b"file bytes"
    assert _Recorder.seen[-2:] == [
        ("/v1/assets/1/file", "Bearer tok"),
        ("/s3/object?X-Amz-Signature=abc", None),
    ]

    with pytest.raises(client.ApiError, match=r"server error 502: <html><h1>502 Bad Gateway"):
        client.Client(recorder).thumbnail(5)
    with pytest.raises(client.ApiError, match="did not answer with JSON"):
        client.Client(recorder).asset(2)


def test_cache_names_cannot_escape_the_cache_folder(client: ModuleType, tmp_path: Path) -> None:
    assert client.safe_name("../../etc/passwd") == "passwd"
    assert client.safe_name("..\\..\\evil.blend") == "evil.blend"
    assert client.safe_name("..") == "asset" and client.safe_name("") == "asset"
    assert client.safe_name("a:b?.png") == "a_b_.png"
    path = client.cached_file_path(str(tmp_path), "http://h:1", 7, "../x.blend")
    assert Path(path).parent.parent.parent == tmp_path / "files" and Path(path).name == "x.blend"
    assert client.cached_file_path(str(tmp_path), "http://h:1/", 7, "x") == client.cached_file_path(
        str(tmp_path), "http://h:1", 7, "x"
    )
    assert client.cached_file_path(str(tmp_path), "http://other:1", 7, "x") != client.cached_file_path(
        str(tmp_path), "http://h:1", 7, "x"
    )


# ---------------------------------------------------------------------- inside Blender


def _blender_binary() -> tuple[str, str]:
    """(path, "") when Blender is there, else ("", why)."""
    found = os.environ.get("BLENDER_BIN") or shutil.which("blender") or "/usr/bin/blender"
    if os.path.isfile(found) and os.access(found, os.X_OK):
        return found, ""
    return (
        "",
        f"Blender not found ({found}); install it (Debian: apt-get install -y blender) or set BLENDER_BIN",
    )


BLENDER, NO_BLENDER = _blender_binary()


def _bpy_python() -> tuple[str, str]:
    """Blender 4.x as a Python module (PyPI `bpy`, in its own venv made by `make test`): the 4.x API check."""
    found = os.environ.get("CGCHAT_BPY_PYTHON") or str(REPO / ".venv-bpy" / "bin" / "python")
    if os.path.isfile(found) and os.access(found, os.X_OK):
        return found, ""
    return "", f"no Python with the `bpy` module at {found} (make install-test creates .venv-bpy)"


BPY_PYTHON, NO_BPY = _bpy_python()
RUNTIMES = {
    "blender-3.4-binary": (BLENDER, NO_BLENDER, lambda: [BLENDER, "-b", "--factory-startup", "--python-exit-code", "1",
                                                          "--python", str(RUNNER), "--"]),
    "bpy-4.2-module": (BPY_PYTHON, NO_BPY, lambda: [BPY_PYTHON, str(RUNNER), "--"]),
}


# decided at collection, so that a machine without Blender does not start the server for nothing
@pytest.mark.parametrize(
    "runtime",
    [pytest.param(name, marks=pytest.mark.skipif(not found and not os.environ.get("CI"), reason=why))
     for name, (found, why, _) in RUNTIMES.items()],
)
def test_addon_end_to_end_in_headless_blender(runtime: str, addon_zip: Path, server: str, tmp_path: Path) -> None:
    found, why, make_command = RUNTIMES[runtime]
    if not found:  # under CI a missing Blender is a broken CI set-up, not a reason to skip
        pytest.fail(f"CI must install Blender for the add-on tests: {why}")
    user = {
        name: tmp_path / name.lower()
        for name in (
            "BLENDER_USER_SCRIPTS",
            "BLENDER_USER_CONFIG",
            "BLENDER_USER_DATAFILES",
            "BLENDER_USER_RESOURCES",  # 4.x
            "XDG_CACHE_HOME",  # Blender's file thumbnails
        )
    }
    for folder in user.values():
        folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update({k: str(v) for k, v in user.items()})
    cache = tmp_path / "cache"
    command = [
        *make_command(),
        "--server",
        server,
        "--zip",
        str(addon_zip),
        "--cache",
        str(cache),
    ]
    try:
        run = subprocess.run(
            command,
            check=False,
            capture_output=True,
            text=True,
            timeout=BLENDER_TIMEOUT_S,
            env=env,
            cwd=tmp_path,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"Blender did not finish in {BLENDER_TIMEOUT_S} s:\n{exc.stdout or ''}\n{exc.stderr or ''}"
        )
    output = f"{run.stdout}\n{run.stderr}"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"blender-addon-{runtime}.log").write_text(f"$ {' '.join(command)}\nexit {run.returncode}\n{output}")
    assert run.returncode == 0 and "ALL CHECKS PASSED" in run.stdout, output[-12000:]
    assert "FAIL " not in run.stdout and "Traceback" not in output, output[-12000:]
    passed = [line for line in run.stdout.splitlines() if line.startswith("PASS ")]
    assert len(passed) >= 60, output[-12000:]
    for must in (
        "PASS appended object Barrel is in bpy.data.objects",
        "PASS Barrel is linked into the scene",
        "PASS linked object Lantern comes from the library",
        "PASS video loaded as a movie clip (96 frames)",
        "PASS unreachable server: an error in the status bar, no traceback",
    ):
        assert must in passed, output[-12000:]
    # installed into the temporary user scripts folder, nowhere else
    assert (user["BLENDER_USER_SCRIPTS"] / "addons" / "cgchat_blender" / "__init__.py").is_file()
    assert any((cache / "files").rglob("props_library_v001.blend"))
