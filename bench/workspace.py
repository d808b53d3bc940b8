"""Where a benchmark runs: a throw-away embedded Postgres home, and a library of the samples copied N times."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def embedded_workdir(keep: bool = False) -> Path:
    """A temporary folder holding CGCHAT_HOME (so the embedded Postgres starts there), removed at exit
    unless ``keep``. Registered before pgserver's own exit hook, which takes a lock file under
    XDG_RUNTIME_DIR (inside it) after the benchmark is done: atexit runs last-in, first-out."""
    work = Path(tempfile.mkdtemp(prefix="cgchat-bench-"))
    work.chmod(0o755)  # pgserver runs Postgres as its own user when we are root: it must reach the data dir
    if not keep:
        atexit.register(shutil.rmtree, work, True)
    os.environ["CGCHAT_HOME"] = str(work / "home")
    os.environ.setdefault("XDG_RUNTIME_DIR", str(work / "run"))
    return work


def replicate_samples(library: Path, copies: int) -> int:
    """samples/ copied ``copies`` times under distinct folder names (every file a new asset with its own
    path); returns the number of files."""
    for i in range(copies):
        shutil.copytree(REPO / "samples", library / f"show{i:03d}", ignore=shutil.ignore_patterns("MANIFEST.md"))
    return sum(1 for p in library.rglob("*") if p.is_file())
