"""Which provider answers, from settings: LLM_PROVIDER=auto|bedrock|openai|llamacpp|none."""

from __future__ import annotations

from cgchat.chat.composer import NoLLMComposer
from cgchat.chat.providers.base import LLMProvider
from cgchat.settings import Settings


def make_provider(settings: Settings) -> LLMProvider | NoLLMComposer:
    choice = settings.llm_provider
    if choice == "auto":
        if settings.bedrock_model_id or settings.bedrock_endpoint_url:
            choice = "bedrock"
        elif settings.llm_base_url:
            choice = "openai"
        else:
            choice = "llamacpp" if settings.llm_gguf_path else "none"
    if choice == "bedrock":
        from cgchat.chat.providers.bedrock import DEFAULT_MODEL_ID, BedrockProvider

        return BedrockProvider(
            model_id=settings.bedrock_model_id or DEFAULT_MODEL_ID, region=settings.aws_region,
            endpoint_url=settings.bedrock_endpoint_url, max_attempts=settings.llm_max_attempts,
            read_timeout=settings.llm_read_timeout_s,
        )
    if choice == "openai":
        if not settings.llm_base_url:
            raise ValueError("LLM_PROVIDER=openai needs LLM_BASE_URL (e.g. http://127.0.0.1:11434/v1 for Ollama)")
        from cgchat.chat.providers.openai_compat import OpenAICompatProvider

        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return OpenAICompatProvider(settings.llm_base_url, settings.llm_model, key,
                                    max_attempts=settings.llm_max_attempts, read_timeout=settings.llm_read_timeout_s)
    if choice == "llamacpp":
        if not settings.llm_gguf_path:
            raise ValueError("LLM_PROVIDER=llamacpp needs LLM_GGUF_PATH (a .gguf file); pip install 'cgchat[llamacpp]'")
        from cgchat.chat.providers.llamacpp import LlamaCppProvider

        return LlamaCppProvider(settings.llm_gguf_path.expanduser(), n_ctx=settings.llm_n_ctx)
    return NoLLMComposer()
