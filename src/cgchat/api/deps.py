"""Request dependencies shared by every route module."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
from fastapi import Request


def db_connection(request: Request) -> Iterator[psycopg.Connection]:
    """A pooled connection for one request; an unreachable database is a 503 (cgchat.db.pool)."""
    with request.app.state.database.connection() as conn:
        yield conn
