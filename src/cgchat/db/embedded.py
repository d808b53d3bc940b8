"""An in-process PostgreSQL 16 + pgvector (the ``pgserver`` package) for the no-cloud default.

pgserver reference-counts the processes using a data dir, so a running ``cgchat serve`` and a
``cgchat ingest`` in another terminal share one postmaster; the last one out stops it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_servers: dict[Path, Any] = {}


def embedded_url(home: Path) -> str:
    """Start (or join) the embedded server whose data lives in ``home/pgdata``; return its URL."""
    pgdata = (home / "pgdata").resolve()
    server = _servers.get(pgdata)
    if server is None:
        os.environ.setdefault("XDG_RUNTIME_DIR", str(home / "run"))
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
        import pgserver  # deferred: not needed (nor installed in Lambda) when DATABASE_URL is set

        log.info("starting embedded PostgreSQL in %s", pgdata)
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        _servers[pgdata] = server
    return server.get_uri()


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
