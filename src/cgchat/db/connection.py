"""Connections to the one database cgchat uses, with pgvector types registered on each."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from pgvector.psycopg import register_vector
from psycopg.rows import dict_row

from cgchat.settings import Settings, get_settings


class DatabaseUnavailable(RuntimeError):
    """Postgres cannot be reached or lacks pgvector; the message says what to fix."""


def database_url(settings: Settings | None = None) -> str:
    """DATABASE_URL when set, else the embedded server's (started on first call)."""
    settings = settings or get_settings()
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    from cgchat.db.embedded import embedded_url

    try:
        return embedded_url(settings.home())
    except Exception as exc:  # pgserver raises a variety of OS/subprocess errors
        raise DatabaseUnavailable(f"could not start the embedded PostgreSQL under {settings.home()}: {exc}") from exc


def configure(conn: psycopg.Connection) -> None:
    """Per-connection setup: vector types, and HNSW breadth for filtered/fused queries."""
    register_vector(conn)
    conn.execute(f"SET hnsw.ef_search = {int(get_settings().hnsw_ef_search)}")
    conn.commit()


def open_connection(url: str | None = None) -> psycopg.Connection:
    """A new connection with dict rows; raises DatabaseUnavailable with the reason."""
    url = url or database_url()
    try:
        conn = psycopg.connect(url, row_factory=dict_row, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}".strip()) from exc
    try:
        configure(conn)
    except psycopg.Error as exc:
        conn.close()
        raise DatabaseUnavailable(
            f"PostgreSQL is reachable but not usable ({exc}); is the pgvector extension installed?"
        ) from exc
    return conn


@contextmanager
def connect(url: str | None = None) -> Iterator[psycopg.Connection]:
    """A connection closed on exit (not committed: callers own their transactions)."""
    conn = open_connection(url)
    try:
        yield conn
    finally:
        conn.close()
