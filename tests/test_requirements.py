"""requirements.txt (what the container image installs) must agree with pyproject.toml: every run-time
dependency pinned to a version its specifier allows, nothing that is not needed at run time."""

from __future__ import annotations

import importlib.util
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned with ==: {line}"
            pins[canonicalize_name(name)] = version
    return pins


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_every_runtime_dependency_is_pinned_within_its_specifier() -> None:
    pins = _pins()
    for raw in _project()["dependencies"]:
        requirement = Requirement(raw)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} (pyproject.toml) is missing from requirements.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.txt pins {name}=={pins[name]}, outside pyproject's {requirement.specifier}")


def test_nothing_beyond_what_the_runtime_dependencies_pull_in() -> None:
    spec = importlib.util.spec_from_file_location("lock_requirements", REPO / "scripts" / "lock_requirements.py")
    lock = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lock)
    needed = set(lock.closure(lock.direct_requirements()))
    extra = set(_pins()) - needed
    assert not extra, f"requirements.txt lists packages no run-time dependency needs: {sorted(extra)}"
    missing = needed - set(_pins())
    assert not missing, f"requirements.txt lacks packages the run-time dependencies need: {sorted(missing)}"
    # The extras (web UI, tests, CLIP conversion) stay out of the Lambda image.
    assert not {"gradio", "torch", "pytest", "transformers", "moto"} & set(_pins())
