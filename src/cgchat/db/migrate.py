"""Forward-only SQL migrations from ``db/migrations/NNN_*.sql``.

Each file runs once, in its own transaction, under an advisory lock so a server and an ingest
starting together never race; re-running is a no-op.
"""

from __future__ import annotations

import logging
from importlib import resources

import psycopg

from cgchat.db.connection import DatabaseUnavailable, RotatingConnection, database_url

log = logging.getLogger(__name__)

_LOCK_KEY = 0x6367_6368_6174  # "cgchat"


def available_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every packaged migration, in order."""
    folder = resources.files("cgchat.db") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(url: str | None = None) -> list[str]:
    """Apply pending migrations; return the names applied (empty when up to date)."""
    url = url or database_url()
    try:
        conn = RotatingConnection.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}".strip()) from exc
    applied: list[str] = []
    with conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, name, sql in available_migrations():
                if version in done:
                    continue
                _apply(conn, version, name, sql)
                applied.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied


def _apply(conn: psycopg.Connection, version: int, name: str, sql: str) -> None:
    log.info("applying migration %s", name)
    try:
        with conn.transaction():
            conn.execute(sql)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
    except psycopg.errors.FeatureNotSupported as exc:
        raise DatabaseUnavailable(
            f"migration {name} failed: {exc}. cgchat needs the pgvector extension "
            "(on RDS/Aurora it is available; on your own server install postgresql-16-pgvector)."
        ) from exc
