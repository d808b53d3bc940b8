"""Whether CGCHAT_HOME can hold cgchat's local state (the embedded database, built model files), and
what to tell the user when it cannot.

A read-only mount, a folder owned by someone else or a full disk otherwise surfaces deep inside
initdb or onnx.save as a traceback or a page of initdb output; here it becomes one sentence that names
the directory, the cause and the fix.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

MB = 1 << 20
# initdb writes ~40 MB; the WAL and the first tables need room to grow.
EMBEDDED_DB_MIN_FREE_MB = 64
_READ_ONLY = {errno.EROFS}
_NO_PERMISSION = {errno.EACCES, errno.EPERM}
_FULL = {errno.ENOSPC, errno.EDQUOT}
WRITE_ERRNOS = frozenset(_READ_ONLY | _NO_PERMISSION | _FULL)


class HomeUnusable(RuntimeError):
    """CGCHAT_HOME cannot be written (read-only, no permission, disk full); the message says what to fix."""


def explain(home: Path, exc: OSError, need_mb: int = 0) -> str:
    """One actionable sentence for a failed write under (or of) ``home``."""
    target = Path(exc.filename) if exc.filename else home
    inside = target == home or home in target.parents
    subject = f"CGCHAT_HOME ({home})" if inside else str(target)
    if exc.errno in _FULL:
        needed = f", {need_mb} MB needed" if need_mb else ""
        cause = f"is on a full disk ({_free_mb(target)} MB free{needed})"
        fix = "free some space there, or set CGCHAT_HOME to a directory on a disk with room (the embedded " \
              "database and model files need a few hundred MB)"
    elif exc.errno in _READ_ONLY:
        cause = "is on a read-only file system"
        fix = "mount it read-write, or set CGCHAT_HOME to a writable directory"
    elif exc.errno in _NO_PERMISSION:
        cause = f"is not writable by this user (uid {os.geteuid()})"
        fix = "give this user write access to it, or set CGCHAT_HOME to a directory it can write"
    else:
        cause = f"cannot be written ({exc.strerror or exc})"
        fix = "set CGCHAT_HOME to a writable directory"
    if not inside:  # not our state folder: the fix is about that path, not CGCHAT_HOME
        fix = fix.split(", or set CGCHAT_HOME")[0]
    where = f" (writing {target})" if inside and target != home else ""
    return f"{subject} {cause}{where}; {fix}"


def check_writable(home: Path, min_free_mb: int = 0) -> None:
    """Create ``home`` if needed and prove that a file can be written there and that ``min_free_mb``
    are free; raise HomeUnusable otherwise. Cheap: one small file, written and removed."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".cgchat-write-check-") as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise HomeUnusable(explain(home, OSError(exc.errno, exc.strerror, str(home)))) from exc
    if min_free_mb and _free_mb(home) < min_free_mb:
        raise HomeUnusable(explain(home, OSError(errno.ENOSPC, "not enough space", str(home)), min_free_mb))


def _free_mb(path: Path) -> int:
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free // MB
        except OSError:
            continue
    return 0
