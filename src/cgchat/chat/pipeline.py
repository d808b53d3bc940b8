"""One chat turn: session history → standalone query → hybrid retrieval → sources → LLM → cited answer.

Retrieval is a fixed step before the model call (Llama 3.2 11B on Bedrock has no tool use), and
the sources are sent to the client before any token, so a UI can show them while the answer
streams. A database connection is held only while retrieving and while saving, never while
the model talks.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import psycopg

from cgchat.chat import stream_models as sm
from cgchat.chat.citations import CitationFilter, Cited
from cgchat.chat.composer import NoLLMComposer
from cgchat.chat.prompts import SYSTEM_PROMPT, user_message
from cgchat.chat.providers.base import (
    ChatMessage,
    GenerationParams,
    LLMProvider,
    ProviderError,
    Stop,
    TextDelta,
    Usage,
)
from cgchat.chat.rewrite import standalone_query
from cgchat.chat.sessions import PostgresSessions, SessionStoreFactory, StoredMessage
from cgchat.search import SearchRequest, search
from cgchat.search.query_parser import is_visual_question

log = logging.getLogger(__name__)

ConnectionSource = Callable[[], AbstractContextManager[psycopg.Connection]]
HISTORY_TURNS = 6


@dataclass(slots=True)
class ChatTurn:
    question: str
    owner: str
    session_id: str | None = None
    top_k: int = 8
    request_id: str = ""


@dataclass(slots=True)
class Prepared:
    turn: ChatTurn
    session_id: str
    history: list[StoredMessage]
    query: str
    response: Any


class ChatPipeline:
    def __init__(self, connection: ConnectionSource, provider: LLMProvider | NoLLMComposer,
                 sessions: SessionStoreFactory = PostgresSessions, params: GenerationParams | None = None):
        self.connection = connection
        self.provider = provider
        self.sessions = sessions
        self.params = params or GenerationParams()

    def run(self, turn: ChatTurn) -> Iterator[sm.StreamEvent]:
        """Both steps; see prepare and stream."""
        return self.stream(self.prepare(turn))

    def prepare(self, turn: ChatTurn) -> Prepared:
        """Session and retrieval, done before any byte is sent so bad input can still get a 4xx.

        Raises SessionNotFound, SearchError, DatabaseUnavailable.
        """
        with self.connection() as conn:
            sessions = self.sessions(conn)
            session_id = sessions.open(turn.owner, turn.session_id, turn.question)
            history = sessions.history(turn.owner, session_id)
            query = standalone_query(turn.question, [m.standalone_query for m in history if m.standalone_query])
            # Appearance questions also search pictures (CLIP, when installed); others stay on text retrievers,
            # where CLIP's text→image similarity would only add noise to "which files use Cycles?".
            visual = is_visual_question(turn.question) or is_visual_question(query)
            response = search(conn, SearchRequest(query, limit=turn.top_k, use_visual=visual))
        return Prepared(turn, session_id, history, query, response)

    def stream(self, prepared: Prepared) -> Iterator[sm.StreamEvent]:
        """The stream events of one turn, in protocol order; never raises."""
        turn, session_id, history, query, response = (
            prepared.turn, prepared.session_id, prepared.history, prepared.query, prepared.response)
        message_id = str(uuid.uuid4())
        yield sm.Meta(request_id=turn.request_id or str(uuid.uuid4()), session_id=session_id, message_id=message_id,
                      provider=self.provider.name, model=self.provider.model, standalone_query=query,
                      retrievers=response.retrievers)
        sources = [_source(n, r) for n, r in enumerate(response.results, 1)]
        yield sm.Sources(sources=sources)

        answer: list[str] = []
        citations = CitationFilter({s.n: s.asset_id for s in sources})
        finish = "error"
        for event in self._generate(turn.question, query, history, response):
            if isinstance(event, TextDelta):
                yield from _tokens(citations.feed(event.text), answer)
            elif isinstance(event, Usage):
                yield from _tokens(citations.flush(), answer)
                yield sm.UsageInfo(input_tokens=event.input_tokens, output_tokens=event.output_tokens)
            elif isinstance(event, Stop):
                finish = event.reason
            else:  # an error event from _generate
                yield from _tokens(citations.flush(), answer)
                yield event
        yield from _tokens(citations.flush(), answer)
        yield sm.Done(finish_reason=finish)
        self._save(turn, session_id, query, message_id, "".join(answer), sources, citations.cited, finish)

    def _generate(self, question: str, query: str, history: list[StoredMessage], response: Any) -> Iterator[Any]:
        if isinstance(self.provider, NoLLMComposer):
            yield from self.provider.compose(query, response.results, response.filters.as_dict())
            return
        messages = _history_messages(history)
        messages.append(ChatMessage("user", user_message(question, response.results)))
        try:
            yield from self.provider.stream(SYSTEM_PROMPT, messages, self.params)
        except ProviderError as exc:
            log.warning("LLM provider %s failed: %s (%s)", self.provider.name, exc.code, exc.message)
            yield sm.Error(code=exc.code, message=exc.message, retryable=exc.retryable)

    def _save(self, turn: ChatTurn, session_id: str, query: str, message_id: str, answer: str,
              sources: list[sm.Source], cited: list[Cited], finish: str) -> None:
        user = StoredMessage(id=str(uuid.uuid4()), role="user", content=turn.question, standalone_query=query)
        reply = StoredMessage(
            id=message_id, role="assistant", content=answer, sources=[s.model_dump() for s in sources],
            citations=[{"n": c.n, "asset_id": c.asset_id} for c in cited], provider=self.provider.name,
            model=self.provider.model, finish_reason=finish,
        )
        try:
            with self.connection() as conn:
                self.sessions(conn).append(session_id, user, reply)
        except Exception:  # noqa: BLE001 - psycopg or boto errors alike  # the answer was delivered; losing its history is logged, not fatal
            log.exception("could not save chat turn to session %s", session_id)


def _history_messages(history: list[StoredMessage]) -> list[ChatMessage]:
    """The last completed turns, strictly alternating user/assistant as Bedrock requires: a turn whose
    answer is empty (the model failed before any text) is left out whole."""
    turns: list[tuple[StoredMessage, StoredMessage]] = []
    for question, answer in zip(history, history[1:], strict=False):
        if question.role == "user" and answer.role == "assistant" and question.content and answer.content:
            turns.append((question, answer))
    messages: list[ChatMessage] = []
    for question, answer in turns[-HISTORY_TURNS:]:
        messages += [ChatMessage("user", question.content), ChatMessage("assistant", answer.content)]
    return messages


def _tokens(pieces: Iterator[str | Cited], answer: list[str]) -> Iterator[sm.StreamEvent]:
    for piece in pieces:
        if isinstance(piece, Cited):
            yield sm.Citation(n=piece.n, asset_id=piece.asset_id)
        elif piece:
            answer.append(piece)
            yield sm.Token(text=piece)


def _source(n: int, result: Any) -> sm.Source:
    return sm.Source(
        n=n, asset_id=result.id, path=result.path, name=result.name, type=result.type,
        thumbnail_url=result.thumbnail_url, score=result.score, matched_by=result.matched_by,
        snippet=result.description[:240], time_s=result.time_s, timecode=result.timecode,
    )

