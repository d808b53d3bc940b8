-- Chat sessions and their messages (SESSION_STORE=postgres, the local default).
CREATE TABLE chat_sessions (
    id         uuid        PRIMARY KEY,
    owner      text        NOT NULL,            -- Cognito sub, or "local" with AUTH_MODE=off
    title      text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_sessions_owner ON chat_sessions (owner, updated_at DESC);

CREATE TABLE chat_messages (
    id               uuid        PRIMARY KEY,
    session_id       uuid        NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    role             text        NOT NULL CHECK (role IN ('user', 'assistant')),
    content          text        NOT NULL,
    standalone_query text,                       -- user turns: what retrieval searched for
    sources          jsonb       NOT NULL DEFAULT '[]'::jsonb,
    citations        jsonb       NOT NULL DEFAULT '[]'::jsonb,
    provider         text,
    model            text,
    finish_reason    text,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX chat_messages_session ON chat_messages (session_id, created_at);
