"""Chat sessions: the store interface and its Postgres implementation (SESSION_STORE=postgres, the
local default). Each user sees only their own sessions (owner = Cognito ``sub``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb


class SessionNotFound(LookupError):
    """No such session for this owner (another user's session is reported the same way)."""


@dataclass(slots=True)
class StoredMessage:
    id: str
    role: str
    content: str
    standalone_query: str | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)
    provider: str | None = None
    model: str | None = None
    finish_reason: str | None = None
    created_at: str | None = None


class SessionStore(Protocol):
    """What the chat pipeline and the session routes need; Postgres and DynamoDB implement it."""

    def open(self, owner: str, session_id: str | None, title: str) -> str: ...
    def history(self, owner: str, session_id: str) -> list[StoredMessage]: ...
    def append(self, session_id: str, *messages: StoredMessage) -> None: ...
    def list(self, owner: str, limit: int = 50) -> list[dict[str, Any]]: ...
    def delete(self, owner: str, session_id: str) -> None: ...


# Given the request's database connection (which the DynamoDB store ignores), the store to use.
SessionStoreFactory = Callable[[psycopg.Connection], SessionStore]


class PostgresSessions:
    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def open(self, owner: str, session_id: str | None, title: str) -> str:
        """The session to append to: the given one (must be the owner's) or a new one."""
        if session_id is None:
            new_id = str(uuid.uuid4())
            with self.conn.transaction():
                self.conn.execute(
                    "INSERT INTO chat_sessions (id, owner, title) VALUES (%s, %s, %s)", (new_id, owner, title[:120])
                )
            return new_id
        self._check_owner(owner, session_id)
        return session_id

    def history(self, owner: str, session_id: str) -> list[StoredMessage]:
        self._check_owner(owner, session_id)
        rows = self.conn.execute(
            "SELECT id::text, role, content, standalone_query, sources, citations, provider, model, finish_reason,"
            " created_at::text FROM chat_messages WHERE session_id = %s ORDER BY created_at, role DESC",
            (session_id,),
        ).fetchall()
        self.conn.commit()
        return [StoredMessage(**row) for row in rows]

    def append(self, session_id: str, *messages: StoredMessage) -> None:
        with self.conn.transaction():
            for m in messages:
                self.conn.execute(
                    "INSERT INTO chat_messages (id, session_id, role, content, standalone_query, sources, citations,"
                    " provider, model, finish_reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (m.id, session_id, m.role, m.content.replace("\x00", ""), m.standalone_query, Jsonb(m.sources),
                     Jsonb(m.citations), m.provider, m.model, m.finish_reason),
                )
            self.conn.execute("UPDATE chat_sessions SET updated_at = now() WHERE id = %s", (session_id,))

    def list(self, owner: str, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT id::text, title, created_at::text, updated_at::text FROM chat_sessions WHERE owner = %s"
            " ORDER BY updated_at DESC LIMIT %s",
            (owner, limit),
        ).fetchall()
        self.conn.commit()
        return rows

    def delete(self, owner: str, session_id: str) -> None:
        with self.conn.transaction():
            deleted = self.conn.execute(
                "DELETE FROM chat_sessions WHERE id = %s AND owner = %s", (_uuid(session_id), owner)
            ).rowcount
        if not deleted:
            raise SessionNotFound(session_id)

    def _check_owner(self, owner: str, session_id: str) -> None:
        row = self.conn.execute(
            "SELECT 1 FROM chat_sessions WHERE id = %s AND owner = %s", (_uuid(session_id), owner)
        ).fetchone()
        self.conn.commit()
        if row is None:
            raise SessionNotFound(session_id)


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise SessionNotFound(value) from exc
