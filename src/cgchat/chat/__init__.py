"""Chat: question → standalone query → retrieval → context → LLM → streamed, cited answer."""
