"""An in-process PostgreSQL 16 + pgvector (the ``pgserver`` package) for the no-cloud default.

pgserver reference-counts the processes using a data dir, so a running ``cgchat serve`` and a
``cgchat ingest`` in another terminal share one postmaster; the last one out stops it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from cgchat.local_state import EMBEDDED_DB_MIN_FREE_MB, check_writable

log = logging.getLogger(__name__)

_servers: dict[Path, Any] = {}
STARTUP_WAIT_S = 60.0  # at most this long for an interrupted start's initdb or postmaster to settle


def embedded_url(home: Path) -> str:
    """Start (or join) the embedded server whose data lives in ``home/pgdata``; return its URL."""
    pgdata = (home / "pgdata").resolve()
    server = _servers.get(pgdata)
    if server is None:
        # a read-only or full CGCHAT_HOME fails here in one sentence, not inside initdb
        check_writable(home, 0 if (pgdata / "PG_VERSION").exists() else EMBEDDED_DB_MIN_FREE_MB)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(home / "run"))
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
        log.info("starting embedded PostgreSQL in %s", pgdata)
        try:
            server = _start(pgdata)
        except Exception:
            check_writable(home, min_free_mb=8)  # the disk filled up meanwhile: say so, not initdb's log
            raise
        _servers[pgdata] = server
    return server.get_uri()


def _start(pgdata: Path) -> Any:
    """pgserver.get_server, safe after a cgchat was killed while starting this data dir: its initdb runs
    on as an orphan. Starting Postgres on a half-initialised cluster would break it for good, and
    pgserver trips over the lock file of initdb's standalone backend (or of a postmaster still starting),
    so wait, bounded, for those to finish."""
    import pgserver  # deferred: not needed (nor installed in Lambda) when DATABASE_URL is set

    deadline = time.monotonic() + STARTUP_WAIT_S
    _forget_dead_handles(pgdata)
    while True:
        _wait_for_initdb(pgdata, deadline)
        try:
            return pgserver.get_server(pgdata, cleanup_mode="stop")
        except AssertionError:  # pgserver's parser: a postmaster.pid that is still being written
            if time.monotonic() > deadline or not _lock_holder_alive(pgdata):
                raise
            time.sleep(0.2)


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop the processes that died without letting go (SIGKILL, a crash) from pgserver's list of users of
    this server: otherwise "the last one out stops it" never happens again and Postgres runs forever."""
    import psutil
    from pgserver.postgres_server import PostgresServer
    from pgserver.utils import DiskList

    handles = DiskList(pgdata / ".handle_pids.json")
    with PostgresServer._lock:  # the lock pgserver itself holds while it adds or removes a handle
        pids = handles.get() if handles.path.exists() else []
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            log.info("forgetting embedded PostgreSQL handles of dead processes %s", sorted(set(pids) - set(alive)))
            handles.put(alive)


def _wait_for_initdb(pgdata: Path, deadline: float) -> None:
    import psutil

    while time.monotonic() < deadline:
        if not any(p.info["name"] == "initdb" and str(pgdata) in (p.info["cmdline"] or [])
                   for p in psutil.process_iter(["name", "cmdline"])):
            return
        log.info("waiting for the initdb of %s left running by an interrupted start", pgdata)
        time.sleep(0.2)


def _lock_holder_alive(pgdata: Path) -> bool:
    """Whether the process named in postmaster.pid (negative for a standalone backend) still runs."""
    import psutil

    try:
        first = (pgdata / "postmaster.pid").read_text().split("\n", 1)[0]
        return psutil.pid_exists(abs(int(first)))
    except (OSError, ValueError):
        return False


def release_embedded() -> None:
    """Give up this process's handle on the embedded server(s); the last process out stops Postgres.

    Called from the API's lifespan shutdown: uvicorn re-raises SIGTERM/SIGINT after a graceful
    shutdown, so the process dies by the signal and pgserver's own atexit hook never runs.
    """
    while _servers:
        _, server = _servers.popitem()
        try:
            server.cleanup()
        except Exception:  # noqa: BLE001 - stopping is best effort; the next start recovers a stale server
            log.warning("could not stop the embedded PostgreSQL cleanly", exc_info=True)
