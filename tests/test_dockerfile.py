"""The Dockerfile cannot be built on these machines (no Docker engine), so it is checked statically:
the Lambda base image, the entry point, models baked in at build time (CLIP when CLIP_SOURCE is
given), nothing secret, nothing the build context does not have."""

from __future__ import annotations

import re

from tests.conftest import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)  # join continuation lines
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_lambda_python_311_base_and_entry_point() -> None:
    froms = [arg for op, arg in _instructions() if op == "FROM"]
    assert froms and all(arg.startswith("public.ecr.aws/lambda/python:3.11") for arg in froms)
    cmd = [arg for op, arg in _instructions() if op == "CMD"][-1]
    module, function = re.fullmatch(r'\["(\w+)\.(\w+)"\]', cmd).groups()
    assert (REPO / f"{module}.py").is_file() and f"def {function}(" in (REPO / f"{module}.py").read_text()


def test_models_are_baked_in_at_build_time() -> None:
    runs = " ".join(arg for op, arg in _instructions() if op == "RUN")
    assert "get_text_encoder()" in runs  # the fp32 MiniLM graph compiled in the image
    assert "ARG CLIP_SOURCE" in DOCKERFILE and 'models install-clip "$CLIP_SOURCE"' in runs
    final_env = [arg for op, arg in _instructions() if op == "ENV"][-1]
    assert "VISUAL_BACKFILL=false" in final_env and "CGCHAT_HOME=/opt/cgchat" in final_env


def test_copies_exist_and_nothing_secret() -> None:
    for op, arg in _instructions():
        if op == "COPY" and not arg.startswith("--from"):
            for source in arg.split()[:-1]:
                assert (REPO / source).exists(), source
    assert not re.search(r"AKIA[0-9A-Z]{16}|aws_secret_access_key|PASSWORD=|api[_-]?key\s*=", DOCKERFILE, re.I)
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env*"} <= set(ignored)
