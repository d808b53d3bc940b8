"""AWS Lambda entry points: ``lambda_function.handler`` serves the cgchat FastAPI app behind API Gateway;
``lambda_function.ingest_handler`` is the S3 → SQS ingestion worker (see the end of this file).

Two ways to deploy the same ASGI app (``cgchat.api.app.create_app``):

(a) Buffered: this module. API Gateway REST API (proxy integration, payload v1.0) or HTTP API
    (payload v2.0) invokes ``handler(event, context)``; Mangum turns the event into an ASGI request
    and the app's response into the proxy response. API Gateway's Lambda integration is buffered, so
    the SSE chat endpoints (``POST /v1/chat/stream``, ``POST /chat``) run to completion and return
    their whole ``text/event-stream`` body at once, with the SSE headers (``Cache-Control: no-cache``,
    ``X-Accel-Buffering: no``). Clients parse the same ``meta`` → ``sources`` → ``token``… → ``done``
    frames; they just arrive together. Handler setting: ``lambda_function.handler``.

    The app, its psycopg pool and the text encoder are built once per container, on the first
    invocation, and reused by every later (warm) invocation: the app's lifespan startup (migrate,
    open the pool, load the encoder) runs exactly once. Mangum itself would run the lifespan
    around *every* event (startup and shutdown per call), so it is given ``lifespan="off"`` and this
    module holds one lifespan cycle open for the container's life instead.

    REST API stage prefixes are handled: an event whose path still carries the stage
    (``/prod/chat`` with ``requestContext.stage == "prod"``, as in
    ``curl -X POST https://{api}.execute-api.{region}.amazonaws.com/prod/chat -d '{"query": "..."}'``
    replayed as a test event) is routed to ``/chat``; HTTP API named stages (``rawPath`` ``/prod/...``)
    likewise. ``API_GATEWAY_BASE_PATH`` (e.g. ``/cgchat``) strips a custom-domain base path mapping.

    Environment: the settings of ``cgchat.settings`` (``DATABASE_URL`` of an RDS/Aurora Postgres
    with pgvector, ``LLM_PROVIDER``/``BEDROCK_MODEL_ID``, ``AUTH_MODE=cognito`` + ``COGNITO_*``, ...);
    ``CGCHAT_HOME=/opt/cgchat`` in the image: the models are baked in there at build time (read-only
    at run time), so no cold start compiles or downloads one.

(b) True response streaming: run the same app under uvicorn with the AWS Lambda Web Adapter
    extension (layer or ``COPY --from=public.ecr.aws/awsguru/aws-lambda-adapter`` in a container
    image) and ``AWS_LWA_INVOKE_MODE=response_stream``, ``PORT=8000``, command::

        python -m uvicorn cgchat.api.app:create_app --factory --host 0.0.0.0 --port 8000

    behind an API Gateway REST API integration with response streaming enabled (or a Function URL
    with ``InvokeMode=RESPONSE_STREAM``). Tokens then reach the client as they are generated, and
    the ``: ping`` keep-alives matter. That path doesn't use this module; the Dockerfile's default
    command and template.yaml set it up (docs/DEPLOY.md).

Local run: ``python test_local.py "question"`` feeds a sample REST event to ``handler``.
"""

from __future__ import annotations

import asyncio
import copy
import os
import threading
from typing import Any

from mangum import Mangum
from mangum.protocols import LifespanCycle

# The per-container singleton (exposed for tests: identity and startup count).
_APP: Any = None          # the FastAPI app
_ADAPTER: Mangum | None = None
_LIFESPAN: LifespanCycle | None = None
_LOOP: asyncio.AbstractEventLoop | None = None
STARTUPS = 0              # lifespan startups run in this process
_LOCK = threading.Lock()


def get_adapter() -> Mangum:
    """The Mangum adapter around the app, created (and the app started) on first use."""
    global _APP, _ADAPTER, _LIFESPAN, _LOOP, STARTUPS
    if _ADAPTER is not None:
        return _ADAPTER
    with _LOCK:
        if _ADAPTER is None:
            from cgchat.api.app import create_app

            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            app = create_app()
            lifespan = LifespanCycle(app, "on")
            try:
                lifespan.__enter__()  # migrate, open the pool, load the encoder: once per container
            except BaseException:
                loop.close()  # startup failed (e.g. database unreachable): the next invocation retries
                asyncio.set_event_loop(None)
                raise
            STARTUPS += 1
            base_path = os.environ.get("API_GATEWAY_BASE_PATH", "/")
            _APP, _LIFESPAN, _LOOP = app, lifespan, loop
            _ADAPTER = Mangum(app, lifespan="off", api_gateway_base_path=base_path)
    return _ADAPTER


def shutdown() -> None:
    """Run the app's lifespan shutdown (closes the pool) and forget the singleton. For tests/local runs."""
    global _APP, _ADAPTER, _LIFESPAN, _LOOP
    with _LOCK:
        lifespan, loop = _LIFESPAN, _LOOP
        _APP = _ADAPTER = _LIFESPAN = _LOOP = None
        if lifespan is not None and loop is not None:
            asyncio.set_event_loop(loop)
            try:
                lifespan.__exit__(None, None, None)
            finally:
                loop.close()
                asyncio.set_event_loop(None)


def _strip_prefix(path: str, prefix: str) -> str:
    if path == prefix:
        return "/"
    return path[len(prefix):] if path.startswith(prefix + "/") else path


def _without_stage(event: dict[str, Any]) -> dict[str, Any]:
    """Drop a ``/{stage}`` prefix that an API Gateway path still carries."""
    context = event.get("requestContext") or {}
    stage = context.get("stage")
    if not stage or stage == "$default":
        return event
    prefix = f"/{stage}"
    if event.get("version") == "2.0":  # HTTP API: rawPath/http.path include a named stage
        event = copy.copy(event)
        event["rawPath"] = _strip_prefix(event.get("rawPath") or "/", prefix)
        http = dict(context.get("http") or {})
        if "path" in http:
            http["path"] = _strip_prefix(http["path"], prefix)
        event["requestContext"] = {**context, "http": http}
        return event
    path = event.get("path")
    # REST API: ``path`` normally excludes the stage (requestContext.path has it). Only when the two
    # are equal (or there is no requestContext.path) does ``path`` carry the stage, e.g. /prod/chat.
    if isinstance(path, str) and context.get("path", path) == path and (path == prefix or path.startswith(prefix + "/")):
        event = copy.copy(event)
        event["path"] = _strip_prefix(path, prefix)
    return event


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """API Gateway (REST v1.0 / HTTP API v2.0) proxy event in, proxy response out."""
    adapter = get_adapter()
    if _LOOP is not None:
        asyncio.set_event_loop(_LOOP)  # Mangum runs each request on the current loop: keep it ours
    return adapter(_without_stage(event), context)


# --- the ingestion worker (same image, handler ``lambda_function.ingest_handler``) --------------

_WORKER: Any = None


def ingest_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """SQS batch of S3 event notifications → index/delete assets; partial batch failures reported
    (the event source mapping needs ``FunctionResponseTypes: [ReportBatchItemFailures]``)."""
    global _WORKER
    if _WORKER is None:
        from cgchat.ingest.worker import IngestWorker

        _WORKER = IngestWorker()
    return _WORKER.handle(event).response()
