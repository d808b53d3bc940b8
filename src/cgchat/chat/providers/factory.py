"""Which provider answers, from settings: LLM_PROVIDER=auto|bedrock|none."""

from __future__ import annotations

from cgchat.chat.composer import NoLLMComposer
from cgchat.chat.providers.base import LLMProvider
from cgchat.settings import Settings

DEFAULT_BEDROCK_MODEL = "us.meta.llama3-2-11b-instruct-v1:0"


def make_provider(settings: Settings) -> LLMProvider | NoLLMComposer:
    choice = settings.llm_provider
    if choice == "auto":
        choice = "bedrock" if (settings.bedrock_model_id or settings.bedrock_endpoint_url) else "none"
    if choice == "bedrock":
        from cgchat.chat.providers.bedrock import BedrockProvider

        return BedrockProvider(
            model_id=settings.bedrock_model_id or DEFAULT_BEDROCK_MODEL, region=settings.aws_region,
            endpoint_url=settings.bedrock_endpoint_url,
        )
    return NoLLMComposer()
