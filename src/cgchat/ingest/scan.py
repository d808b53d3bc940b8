"""Finding the files under the paths a user asks to index."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def absolute(path: Path) -> Path:
    """Absolute and normalised, without resolving symlinks (the user's view of the tree is kept)."""
    return Path(os.path.normpath(os.path.abspath(os.path.expanduser(path))))


def iter_files(root: Path) -> Iterator[Path]:
    """Every regular file under ``root`` (or ``root`` itself), sorted, hidden names skipped.

    Directory symlinks are not followed: studio trees often link shared libraries into every
    shot, and following them would index the same files many times or loop forever.
    """
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath, name)
            if path.is_file():
                yield path
