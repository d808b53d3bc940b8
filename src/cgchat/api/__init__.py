"""The HTTP API (FastAPI); OpenAPI at /docs."""
