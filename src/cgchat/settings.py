"""One typed settings object, read from the environment (and an optional ``.env``).

Every knob lives here so deployment (Lambda, a laptop, CI) differs only in environment variables.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    cgchat_home: Path = Field(
        default=Path("~/.cgchat"),
        description="All local state: the embedded database's data dir, model caches.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql:// URL of a Postgres with pgvector. Unset: an embedded Postgres under CGCHAT_HOME.",
    )
    database_secret_arn: str | None = Field(
        default=None, description="Secrets Manager secret in RDS's JSON format (username, password, host, port, "
        "dbname), read once per process when DATABASE_URL is unset: the password never sits in the environment.",
    )
    database_sslmode: str = Field(default="prefer", description="sslmode for DATABASE_SECRET_ARN connections.")
    db_pool_max: int = Field(default=8, ge=1, le=100, description="Connections the API server may hold.")

    text_model: Literal["minilm-fp32", "minilm-int8"] = Field(
        default="minilm-fp32",
        description="minilm-fp32: the reference weights compiled to a fused ONNX graph (exact, faster here); "
        "minilm-int8: the ready int8 export (no build step).",
    )
    text_model_path: Path | None = Field(
        default=None,
        description="ONNX export of another sentence encoder (inputs input_ids/attention_mask/token_type_ids, "
        "output last_hidden_state); overrides TEXT_MODEL.",
    )
    text_tokenizer_path: Path | None = Field(
        default=None, description="tokenizer.json for TEXT_MODEL_PATH. Unset: the bundled MiniLM tokenizer."
    )
    text_model_id: str | None = Field(
        default=None,
        description="Identifier stored with every embedding; change it when you change the model so vectors "
        "of two models are never compared. Unset: derived from the model file.",
    )
    text_max_tokens: int = Field(default=256, ge=16, le=512)
    text_batch_size: int = Field(default=8, ge=1, le=1024, description="Texts per ONNX run (small is faster on CPU).")
    onnx_threads: int = Field(default=0, ge=0, le=64, description="0: ONNX Runtime picks (one per core).")

    clip_model_dir: Path | None = Field(
        default=None, description="Installed CLIP (cgchat models install-clip). Unset: CGCHAT_HOME/models/clip."
    )
    video_keyframe_interval_s: float = Field(
        default=2.0, gt=0, le=3600, description="One CLIP keyframe per this many seconds of video (at least one)."
    )
    video_max_keyframes: int = Field(default=16, ge=1, le=256, description="Keyframes per video at most.")
    visual_backfill: bool = Field(
        default=True, description="The API server embeds pending/stale visual assets in a background thread "
        "while a CLIP model is installed (turn off on Lambda: ingestion workers do it there).",
    )
    visual_backfill_poll_s: float = Field(default=30.0, gt=0, le=86400, description="How often the backfill looks "
                                          "for new pending assets once it has caught up.")

    hnsw_ef_search: int = Field(default=100, ge=10, le=1000)
    rrf_k: int = Field(default=60, ge=1, le=1000)
    search_candidates: int = Field(
        default=100, ge=10, le=2000, description="Per-retriever candidates fed into hybrid fusion."
    )

    llm_provider: Literal["auto", "bedrock", "openai", "llamacpp", "none"] = Field(
        default="auto", description="auto: Bedrock when BEDROCK_MODEL_ID or BEDROCK_ENDPOINT_URL is set, else an "
        "OpenAI-compatible server when LLM_BASE_URL is set, else llama.cpp when LLM_GGUF_PATH is set, else none "
        "(the grounded no-LLM answer).",
    )
    llm_gguf_path: Path | None = Field(default=None, description="A local GGUF model for llama.cpp in process.")
    llm_n_ctx: int = Field(default=4096, ge=256, le=131072, description="llama.cpp context length.")
    llm_base_url: str | None = Field(default=None, description="OpenAI-compatible API, e.g. http://127.0.0.1:11434/v1")
    llm_model: str = Field(default="llama3.2", description="Model name on the OpenAI-compatible server.")
    llm_api_key: SecretStr | None = Field(default=None, description="Bearer key for the OpenAI-compatible server.")
    bedrock_model_id: str | None = Field(default=None, description="Default us.meta.llama3-2-11b-instruct-v1:0.")
    bedrock_endpoint_url: str | None = Field(default=None, description="Override the Bedrock runtime endpoint.")
    aws_region: str = Field(default="us-east-1")
    llm_read_timeout_s: float = Field(
        default=120.0, gt=0, le=3600, description="Longest silence from the model (Bedrock or OpenAI-compatible) "
        "before the answer ends with an error event: before its first byte and between chunks. A server that never "
        "answers is given up on after at most LLM_MAX_ATTEMPTS times this.",
    )
    llm_max_attempts: int = Field(
        default=4, ge=1, le=10, description="Requests per answer while no text was shown: throttling (HTTP 429), "
        "5xx and dropped connections before the first token are retried with backoff; never after it.",
    )
    chat_top_k: int = Field(default=8, ge=1, le=50, description="Sources retrieved per chat turn.")
    sse_ping_seconds: float = Field(default=10.0, gt=0, le=300, description="`: ping` after this much stream silence.")

    auth_mode: Literal["off", "cognito"] = Field(default="off", description="off: every caller is the local user.")
    cognito_region: str | None = None
    cognito_user_pool_id: str | None = None
    cognito_app_client_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="App client ids: comma-separated or a JSON list."
    )
    cognito_issuer: str | None = Field(default=None, description="Override the issuer URL (tests, proxies).")
    cognito_jwks_url: str | None = None
    cognito_token_use: Literal["access", "id", "any"] = "access"

    s3_endpoint_url: str | None = Field(default=None, description="Override the S3 endpoint (s3:// assets).")
    assets_bucket: str | None = Field(default=None, description="The S3 bucket of the asset library (deployments).")
    ingest_queue_url: str | None = Field(default=None, description="SQS queue of S3 events the ingestion worker "
                                         "reads; `cgchat enqueue` sends backfill messages to it.")
    ingest_dlq_url: str | None = Field(default=None, description="Dead-letter queue: the worker sends messages of "
                                       "unreadable objects here at once, with the reason, instead of retrying them.")
    sqs_endpoint_url: str | None = Field(default=None, description="Override the SQS endpoint.")
    s3_presign_seconds: int = Field(default=300, ge=10, le=604800, description="Lifetime of presigned asset URLs.")
    s3_range_read_min_mb: int = Field(default=256, ge=1, description="S3 videos at least this big are indexed with "
                                      "range reads (their index and keyframes) instead of a whole download.")
    s3_download_max_mb: int | None = Field(default=None, ge=1, description="Largest S3 object downloaded whole "
                                           "to index it; larger ones that cannot be read in ranges are indexed by name, "
                                           "path and size only. Unset: 90% of the temporary directory's free space.")
    session_store: Literal["postgres", "dynamodb"] = "postgres"
    sessions_table: str = Field(default="cgchat-sessions", description="DynamoDB table (SESSION_STORE=dynamodb).")
    dynamodb_endpoint_url: str | None = Field(default=None, description="Override the DynamoDB endpoint.")
    session_ttl_days: int = Field(default=90, ge=1, le=3650)

    ui_enabled: bool = Field(default=True, description="Serve the web app at /ui (needs the `ui` extra: gradio).")
    ui_api_url: str | None = Field(
        default=None, description="The API the web app calls. Unset: the server the page was loaded from.")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "info"

    @field_validator("cognito_app_client_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            return json.loads(value) if value.startswith("[") else [v.strip() for v in value.split(",") if v.strip()]
        return value

    def clip_dir(self) -> Path:
        return (self.clip_model_dir or self.home() / "models" / "clip").expanduser()

    def home(self) -> Path:
        """CGCHAT_HOME with ``~`` expanded, created on first use (HomeUnusable, saying what to fix, if it
        cannot be)."""
        path = self.cgchat_home.expanduser()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from cgchat.local_state import HomeUnusable, explain

            raise HomeUnusable(explain(path, exc)) from exc
        return path


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests call ``get_settings.cache_clear()`` after changing the environment."""
    return Settings()
