"""Database access: where Postgres is (embedded or DATABASE_URL), connections, and migrations."""

from cgchat.db.connection import DatabaseUnavailable, connect, database_url
from cgchat.db.migrate import migrate

__all__ = ["DatabaseUnavailable", "connect", "database_url", "migrate"]
