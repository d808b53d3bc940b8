"""The server's connection pool, built to outlive database outages and password rotations.

- Every new connection resolves the URL again (``database_url``), and a failed connection drops the
  cached Secrets Manager value: after a rotation the next attempt reads the new password, with no
  restart of the function.
- The schema is migrated on the first connection that works, not only at start-up: an API started
  while the database is down (a Lambda cold start during an RDS failover) answers 503s and recovers
  by itself, instead of exiting and leaving the Lambda Web Adapter with no server.
- Any failure to get or use a connection becomes ``DatabaseUnavailable`` (a 503 with a clear message).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from cgchat.db.connection import DatabaseUnavailable, RotatingConnection, configure, database_url
from cgchat.db.migrate import migrate

log = logging.getLogger(__name__)

# After a failed migration attempt, requests within this many seconds fail fast with the same reason
# instead of each waiting out its own connect timeout against a database that is down.
RETRY_AFTER_S = 2.0


class Database:
    """One pool per process, opened without waiting: connections are made in the background, each
    resolving ``database_url`` again (a rotated secret is picked up)."""

    def __init__(self, max_size: int, timeout_s: float = 10.0, migrated: bool = False):
        """``migrated``: the caller already applied the migrations (the server does at start-up)."""
        self.pool: ConnectionPool[RotatingConnection] = ConnectionPool(
            database_url, connection_class=RotatingConnection, min_size=1, max_size=max_size, configure=configure,
            kwargs={"row_factory": dict_row, "connect_timeout": 10}, check=ConnectionPool.check_connection,
            timeout=timeout_s, open=True,
        )
        self._lock = threading.Lock()
        self._ready = migrated
        self._failure: tuple[float, str] | None = None

    def prepare(self) -> None:
        """Apply pending migrations once per process; raises DatabaseUnavailable while it cannot."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            if self._failure and time.monotonic() - self._failure[0] < RETRY_AFTER_S:
                raise DatabaseUnavailable(self._failure[1])
            try:
                migrate(database_url())
            except DatabaseUnavailable as exc:
                self._failure = (time.monotonic(), str(exc))
                raise
            self._ready, self._failure = True, None

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        """A pooled connection for one unit of work, after the schema is ready."""
        self.prepare()
        try:
            with self.pool.connection(timeout) as conn:
                yield conn
        except PoolTimeout as exc:
            raise DatabaseUnavailable(f"no database connection within the pool timeout: {exc}") from exc
        except psycopg.OperationalError as exc:  # the server went away mid-request
            raise DatabaseUnavailable(f"lost the database connection: {exc}".strip()) from exc

    def close(self) -> None:
        self.pool.close()
