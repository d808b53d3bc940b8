"""Verification of AWS Cognito JWTs (access and id tokens), independent of any web framework.

The API, the CLI and the tests all need one answer to "who sent this request?", and the checks are
security-critical, so they live here in one small module that is easy to audit. Everything that goes
wrong becomes an ``AuthError`` with a specific message and an HTTP status (401, or 503 when the signing
keys cannot be fetched), so a caller only maps ``AuthError`` to a response and never sees a 500.

Order of checks in ``CognitoVerifier.verify`` (cheap and offline first, so junk never costs a JWKS fetch):

1. the token parses and its header names RS256 (``alg: none``, HS256 and friends are refused before any
   key is looked at, which is what defeats the "HS256 signed with the RSA public key" confusion attack);
2. the (still unverified) ``iss`` is our pool, so tokens of other pools fail with "wrong issuer" rather
   than a JWKS refetch for a ``kid`` we can never know;
3. the ``kid`` is in the pool's JWKS (fetched once, then cached);
4. PyJWT checks the RS256 signature, ``iss``, ``exp``/``nbf``/``iat`` (with leeway);
5. ``token_use`` and the app client (``client_id`` for access tokens, ``aud`` for id tokens).

Tokens never appear in messages or logs: messages quote at most a clipped ``alg`` header value.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

import jwt
from jwt import PyJWK, PyJWKClient

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
TokenUseSetting = Literal["access", "id", "any"]
_TOKEN_USES = ("access", "id")
# Claims every Cognito token carries; PyJWT reports a missing one as MissingRequiredClaimError.
_REQUIRED_CLAIMS = ["exp", "iss", "sub", "token_use"]


class AuthError(Exception):
    """Authentication failed; ``status`` is the HTTP status a web layer should answer with.

    401 for anything wrong with the token itself, 503 when we could not check it (JWKS unreachable), so
    clients retry instead of throwing away a good token.
    """

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __repr__(self) -> str:
        return f"AuthError({self.message!r}, status={self.status})"


@dataclass(frozen=True)
class Principal:
    """Who a verified token belongs to. Frozen so that request handlers cannot alter identity.

    ``claims`` is the full, read-only claim set for anything not lifted into a field; it is left out of
    equality, hashing and repr (repr because claims hold personal data that should not end up in logs).
    """

    sub: str
    username: str
    token_use: str  # "access" or "id"; "none" for ANONYMOUS
    client_id: str | None
    scopes: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    email: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


# The identity of every request when AUTH_MODE=off (local, single-user use).
ANONYMOUS = Principal(sub="local", username="local", token_use="none", client_id=None)


def bearer_token(authorization_header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive, RFC 7235).

    Raises AuthError when the header is absent or is not exactly a Bearer scheme and one token. The
    header's content is never echoed: a client that forgot the scheme sent the bare token.
    """
    parts = (authorization_header or "").split()
    if not parts:
        raise AuthError("missing bearer token")
    if parts[0].lower() != "bearer":
        raise AuthError("authorization header must use the Bearer scheme")
    if len(parts) == 1:
        raise AuthError("missing bearer token")
    if len(parts) > 2:
        raise AuthError("malformed authorization header: expected 'Bearer <token>'")
    return parts[1]


class _KeysUnavailable(Exception):
    """The JWKS could not be fetched or parsed: our problem (503), not the token's (401)."""


class _JwksClient(PyJWKClient):
    """PyJWKClient whose key-set failures all surface as ``_KeysUnavailable``.

    PyJWT raises PyJWKClientError both for "no key with this kid" and for "the endpoint returned
    something that is not a JWKS", and lets JSONDecodeError and socket errors during the body read
    through unwrapped. Funnelling every fetch/parse failure through the one method that
    ``get_signing_key`` uses leaves PyJWKClientError meaning exactly "unknown kid".
    """

    def get_signing_keys(self, refresh: bool = False) -> list[PyJWK]:
        try:
            return super().get_signing_keys(refresh)
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, ValueError, OSError) as exc:
            raise _KeysUnavailable(f"{type(exc).__name__}: {exc}") from exc


class CognitoVerifier:
    """Verifies Cognito-issued JWTs for one user pool and a set of its app clients.

    Create one per process and share it: it owns the JWKS cache. ``verify`` may block on a JWKS fetch
    (at most ``jwks_timeout_s``, normally once an hour), so async code should call it in a thread pool
    (FastAPI does this for plain ``def`` dependencies).

    Keyword-only tuning knobs exist mainly for tests:
    ``jwks_lifespan_s`` - how long a fetched JWKS is trusted before it is fetched again, which is also how
    long a key removed from the pool keeps being accepted;
    ``jwks_refresh_cooldown_s`` - PyJWT refetches the JWKS for an unknown ``kid`` at most once per this
    many seconds since the last fetch, so a flood of made-up kids cannot hammer Cognito (the price: a
    freshly rotated key can be refused for up to this long after a fetch);
    ``jwks_timeout_s`` - the HTTP timeout of a JWKS fetch.
    """

    def __init__(
        self,
        region: str | None,
        user_pool_id: str | None,
        app_client_ids: Iterable[str],
        issuer: str | None = None,
        jwks_url: str | None = None,
        token_use: TokenUseSetting = "access",
        leeway_s: int = 30,
        *,
        jwks_lifespan_s: float = 3600.0,
        jwks_refresh_cooldown_s: float = 30.0,
        jwks_timeout_s: float = 5.0,
    ) -> None:
        self.issuer = issuer or _default_issuer(region, user_pool_id)
        self.jwks_url = jwks_url or f"{self.issuer}/.well-known/jwks.json"
        self.app_client_ids = frozenset(app_client_ids)
        if not self.app_client_ids:
            raise ValueError("app_client_ids must name at least one Cognito app client")
        if token_use not in ("access", "id", "any"):
            raise ValueError(f"token_use must be 'access', 'id' or 'any', not {token_use!r}")
        self.token_use = token_use
        self.leeway_s = leeway_s
        self._jwks_host = urlsplit(self.jwks_url).netloc
        # No per-kid LRU (cache_keys=False): that cache never expires, so a key Cognito withdraws
        # would stay trusted for the life of the process. The parsed JWK Set cache below already
        # avoids all network traffic between fetches; a kid lookup in it is a scan of ~2 keys.
        self._jwks = _JwksClient(
            self.jwks_url,
            cache_keys=False,
            cache_jwk_set=True,
            lifespan=jwks_lifespan_s,
            timeout=jwks_timeout_s,
            cooldown_duration=jwks_refresh_cooldown_s,
        )

    def verify(self, token: str) -> Principal:
        """The Principal of a valid token; AuthError (with a specific message) for anything else."""
        try:
            return self._verify(token)
        except AuthError as exc:
            log.debug("token rejected: %s (status %d)", exc.message, exc.status)
            raise

    def _verify(self, token: str) -> Principal:
        if not isinstance(token, str) or not token.strip():
            raise AuthError("missing bearer token")
        header = _unverified_header(token)
        _check_algorithm(header)
        self._check_issuer_unverified(token)
        claims = self._decode(token, self._signing_key(header))
        token_use = self._check_token_use(claims)
        client_id = self._check_client(claims, token_use)
        return _principal(claims, token_use, client_id)

    def _check_issuer_unverified(self, token: str) -> None:
        """Reject other pools' tokens before a JWKS lookup; PyJWT re-checks ``iss`` after the signature."""
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise AuthError("malformed token") from None
        if claims.get("iss") != self.issuer:
            raise AuthError("wrong issuer")

    def _signing_key(self, header: Mapping[str, Any]) -> PyJWK:
        """The pool's public key named by the token's ``kid`` (cached JWKS; one refetch for new kids)."""
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("unknown signing key: token header has no kid")
        try:
            return self._jwks.get_signing_key(kid)
        except _KeysUnavailable as exc:
            log.warning("cannot fetch signing keys from %s: %s", self.jwks_url, exc)
            raise AuthError(f"cannot fetch signing keys from {self._jwks_host}", status=503) from None
        except jwt.PyJWKClientError:
            raise AuthError("unknown signing key") from None

    def _decode(self, token: str, key: PyJWK) -> dict[str, Any]:
        """Signature (RS256 only), iss, exp/nbf/iat via PyJWT; its exceptions become specific messages.

        ``aud`` is not checked here: Cognito access tokens have none and carry ``client_id`` instead,
        so the app-client check is done by ``_check_client`` for both token kinds alike.
        """
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": _REQUIRED_CLAIMS, "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("token is not valid yet (iat/nbf in the future)") from None
        except jwt.InvalidIssuerError:
            raise AuthError("wrong issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token has no {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthError("invalid signature") from None
        except jwt.InvalidAlgorithmError:
            # Header said RS256 but the JWKS entry for this kid is bound to another algorithm.
            raise AuthError("unsupported algorithm: signing key is not an RS256 key") from None
        except jwt.InvalidTokenError:
            raise AuthError("malformed token") from None

    def _check_token_use(self, claims: Mapping[str, Any]) -> str:
        """Access and id tokens are not interchangeable: the API wants the kind it was configured for."""
        token_use = claims.get("token_use")
        if self.token_use == "any":
            if token_use not in _TOKEN_USES:
                raise AuthError("token_use must be access or id")
        elif token_use != self.token_use:
            raise AuthError(f"token_use must be {self.token_use}")
        return str(token_use)

    def _check_client(self, claims: Mapping[str, Any], token_use: str) -> str:
        """The app client the token was issued to must be one of ours (same pool, other app = reject)."""
        claim = "client_id" if token_use == "access" else "aud"
        client_id = claims.get(claim)
        if not isinstance(client_id, str) or not client_id:
            raise AuthError(f"token has no {claim} claim")
        if client_id not in self.app_client_ids:
            raise AuthError("token was issued for another app client")
        return client_id


def _default_issuer(region: str | None, user_pool_id: str | None) -> str:
    """Cognito's issuer URL for a user pool; both parts are needed when no issuer is given."""
    if not region or not user_pool_id:
        raise ValueError("either issuer or both region and user_pool_id are required")
    return f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, read before verification only to choose the algorithm check and the key."""
    try:
        return jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise AuthError("malformed token") from None


def _check_algorithm(header: Mapping[str, Any]) -> None:
    """Only RS256, decided before any key is touched, so no other algorithm can ever be tried."""
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise AuthError(f"unsupported algorithm {_describe_alg(alg)}: only {ALGORITHM}")


def _describe_alg(alg: object) -> str:
    """A safe rendering of an attacker-controlled header value: printable, short."""
    if not isinstance(alg, str) or not alg:
        return "(none given)"
    text = "".join(ch if ch.isprintable() else "?" for ch in alg[:16])
    return text + ("..." if len(alg) > 16 else "")


def _principal(claims: Mapping[str, Any], token_use: str, client_id: str) -> Principal:
    """Lift the claims an app needs into fields; access tokens say ``username``, id tokens ``cognito:username``."""
    sub = str(claims["sub"])
    username = claims.get("username") or claims.get("cognito:username") or sub
    scope = claims.get("scope")
    email = claims.get("email")
    return Principal(
        sub=sub,
        username=str(username),
        token_use=token_use,
        client_id=client_id,
        scopes=tuple(scope.split()) if isinstance(scope, str) else (),
        groups=_strings(claims.get("cognito:groups")),
        email=email if isinstance(email, str) else None,
        claims=MappingProxyType(dict(claims)),
    )


def _strings(value: object) -> tuple[str, ...]:
    """A claim that should be a list of strings, tolerating absence (users in no group have none)."""
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()
