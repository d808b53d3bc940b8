"""Who is calling: AUTH_MODE=off → the local user; AUTH_MODE=cognito → a verified Cognito JWT.

Applied as middleware to every /v1 and /chat route (health, OpenAPI and the web app's page stay open),
so no route can forget it; the verified ``sub`` becomes ``request.state.principal_sub`` (sessions are per sub).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from cgchat.api.errors import error_response
from cgchat.auth import ANONYMOUS, AuthError, CognitoVerifier, bearer_token
from cgchat.settings import Settings

OPEN_PATHS = ("/", "/healthz", "/docs", "/openapi.json")
# The web app's page and Gradio's own endpoints: the app holds no data, it calls /v1 with the user's
# token like any client, so the API stays the one place access is checked.
OPEN_PREFIXES = ("/docs-assets/", "/ui")


def make_verifier(settings: Settings) -> CognitoVerifier | None:
    if settings.auth_mode == "off":
        return None
    return CognitoVerifier(
        region=settings.cognito_region, user_pool_id=settings.cognito_user_pool_id,
        app_client_ids=settings.cognito_app_client_ids, issuer=settings.cognito_issuer,
        jwks_url=settings.cognito_jwks_url, token_use=settings.cognito_token_use,
    )


def install_auth(app: FastAPI, verifier: CognitoVerifier | None) -> None:
    @app.middleware("http")
    async def authenticate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if verifier is None or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            request.state.principal_sub = ANONYMOUS.sub
            return await call_next(request)
        try:
            token = bearer_token(request.headers.get("authorization"))
            principal = await run_in_threadpool(verifier.verify, token)  # may fetch JWKS: off the event loop
        except AuthError as exc:
            response = error_response(exc.status, "unauthorized" if exc.status == 401 else "auth_unavailable", str(exc))
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return response
        request.state.principal_sub = principal.sub
        return await call_next(request)
