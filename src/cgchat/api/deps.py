"""Request dependencies shared by every route module."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
from fastapi import Request
from psycopg_pool import PoolTimeout

from cgchat.db import DatabaseUnavailable


def db_connection(request: Request) -> Iterator[psycopg.Connection]:
    """A pooled connection for one request; an unreachable database becomes a 503, not a 500."""
    try:
        with request.app.state.pool.connection() as conn:
            yield conn
    except (PoolTimeout, psycopg.OperationalError) as exc:
        raise DatabaseUnavailable(str(exc)) from exc
