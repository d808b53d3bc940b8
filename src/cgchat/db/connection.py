"""Connections to the one database cgchat uses, with pgvector types registered on each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

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
    if settings.database_secret_arn:
        return _url_from_secret(settings.database_secret_arn, settings.aws_region, settings.database_sslmode)
    from cgchat.db.embedded import embedded_url

    try:
        return embedded_url(settings.home())
    except Exception as exc:  # pgserver raises a variety of OS/subprocess errors
        raise DatabaseUnavailable(f"could not start the embedded PostgreSQL under {settings.home()}: {exc}") from exc


_secret_urls: dict[str, str] = {}


def _url_from_secret(arn: str, region: str, sslmode: str) -> str:
    """A conninfo from an RDS-style JSON secret, fetched once per process and again after a
    connection failure (RotatingConnection; see docs/DEPLOY.md, rotating the password)."""
    if arn not in _secret_urls:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
        from psycopg.conninfo import make_conninfo

        try:
            raw = boto3.client("secretsmanager", region_name=region).get_secret_value(SecretId=arn)["SecretString"]
            secret = json.loads(raw)
            _secret_urls[arn] = make_conninfo(
                host=secret["host"], port=int(secret.get("port", 5432)), dbname=secret.get("dbname", "postgres"),
                user=secret["username"], password=secret["password"], sslmode=sslmode, connect_timeout=10,
            )
        except (BotoCoreError, ClientError, KeyError, ValueError, TypeError) as exc:
            # The message names the secret and what went wrong, never its value.
            raise DatabaseUnavailable(f"cannot read the database secret {arn}: {type(exc).__name__}: {exc}") from None
    return _secret_urls[arn]


def forget_secret() -> None:
    """Drop cached secrets (after the password was rotated and a connection failed)."""
    _secret_urls.clear()


class RotatingConnection(psycopg.Connection):
    """A connection whose failure to connect makes the next attempt read the database secret again:
    after a password rotation the old one fails once, then the new one is used, with no restart."""

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:  # type: ignore[override]
        try:
            return super().connect(conninfo, **kwargs)
        except psycopg.OperationalError:
            forget_secret()
            raise


def configure(conn: psycopg.Connection) -> None:
    """Per-connection setup: vector types. (The HNSW search breadth is set per query by the search
    engine, transaction-local: a session-level SET would pin every connection behind RDS Proxy.)"""
    register_vector(conn)
    conn.commit()


def open_connection(url: str | None = None) -> psycopg.Connection:
    """A new connection with dict rows; raises DatabaseUnavailable with the reason."""
    url = url or database_url()
    try:
        conn = RotatingConnection.connect(url, row_factory=dict_row, connect_timeout=10)
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
