"""LLM_PROVIDER picks the provider; auto prefers Bedrock, then an OpenAI-compatible URL, then none."""

from __future__ import annotations

import pytest

from cgchat.chat.composer import NoLLMComposer
from cgchat.chat.providers.bedrock import BedrockProvider
from cgchat.chat.providers.factory import make_provider
from cgchat.chat.providers.llamacpp import LlamaCppProvider
from cgchat.chat.providers.openai_compat import OpenAICompatProvider
from cgchat.settings import Settings


@pytest.mark.parametrize(
    ("settings", "expected", "model"),
    [
        (Settings(), NoLLMComposer, "grounded-summary"),
        (Settings(llm_base_url="http://127.0.0.1:11434/v1", llm_model="llama3.2:3b"), OpenAICompatProvider, "llama3.2:3b"),
        (Settings(bedrock_model_id="us.meta.llama3-2-90b-instruct-v1:0", llm_base_url="http://x/v1"), BedrockProvider,
         "us.meta.llama3-2-90b-instruct-v1:0"),
        (Settings(llm_provider="bedrock"), BedrockProvider, "us.meta.llama3-2-11b-instruct-v1:0"),
        (Settings(llm_provider="none", bedrock_model_id="x"), NoLLMComposer, "grounded-summary"),
        (Settings(llm_gguf_path="/models/gemma-3-270m-q4_k_m.gguf"), LlamaCppProvider, "gemma-3-270m-q4_k_m"),
    ],
)
def test_provider_choice(settings: Settings, expected: type, model: str) -> None:
    provider = make_provider(settings)
    assert isinstance(provider, expected) and provider.model == model


def test_missing_provider_settings_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="LLM_BASE_URL"):
        make_provider(Settings(llm_provider="openai"))
    with pytest.raises(ValueError, match="LLM_GGUF_PATH"):
        make_provider(Settings(llm_provider="llamacpp"))
