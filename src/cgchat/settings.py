"""One typed settings object, read from the environment (and an optional ``.env``).

Every knob lives here so deployment (Lambda, a laptop, CI) differs only in environment variables.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    hnsw_ef_search: int = Field(default=100, ge=10, le=1000)
    rrf_k: int = Field(default=60, ge=1, le=1000)
    search_candidates: int = Field(
        default=100, ge=10, le=2000, description="Per-retriever candidates fed into hybrid fusion."
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "info"

    def home(self) -> Path:
        """CGCHAT_HOME with ``~`` expanded, created on first use."""
        path = self.cgchat_home.expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests call ``get_settings.cache_clear()`` after changing the environment."""
    return Settings()
