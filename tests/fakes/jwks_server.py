"""A local stand-in for a Cognito user pool: a JWKS endpoint on 127.0.0.1 and tokens signed like Cognito's.

Tests must never reach AWS, yet should exercise the real HTTP fetch, caching and key rotation of the
verifier, so this serves a real JWKS over a threaded HTTP server on a random free loopback port and
counts the fetches. Tokens are assembled by hand (base64url JSON + signature with ``cryptography``)
rather than with PyJWT, so the signer does not share code with the verifier under test, and so that
tokens PyJWT refuses to produce (``alg: none``, HS256 keyed with an RSA public key PEM) can be minted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

POOL_ID = "us-east-1_TestPool1"
CLIENT_ID = "testclient0123456789abcdef"
JWKS_PATH = "/.well-known/jwks.json"

Mode = Literal["ok", "bad_json", "http_error", "no_keys", "slow"]


@dataclass(frozen=True)
class SigningKey:
    """An RSA key pair with its ``kid``, as Cognito keeps two per pool."""

    kid: str
    private_key: rsa.RSAPrivateKey

    def public_jwk(self) -> dict[str, str]:
        """The public half in the exact shape of a Cognito JWKS entry."""
        numbers = self.private_key.public_key().public_numbers()
        return {
            "alg": "RS256",
            "e": _b64_int(numbers.e),
            "kid": self.kid,
            "kty": "RSA",
            "n": _b64_int(numbers.n),
            "use": "sig",
        }

    def public_pem(self) -> bytes:
        """The public key as PEM: the "secret" of the HS256 key-confusion attack."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def new_key(kid: str | None = None) -> SigningKey:
    """A fresh 2048-bit RSA signing key (about 50 ms: share them across tests where possible)."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(kid or f"kid-{uuid.uuid4().hex[:12]}", private_key)


def mint(
    claims: Mapping[str, Any],
    *,
    key: SigningKey | bytes | None,
    kid: str | None = None,
    alg: str = "RS256",
    headers: Mapping[str, Any] | None = None,
) -> str:
    """A compact JWS over ``claims``, with a Cognito-style header ``{"kid", "alg"}`` (no ``typ``).

    ``alg`` picks the signature: "RS256" needs a SigningKey; "HS256" takes bytes as the HMAC secret
    (a SigningKey means its public PEM, i.e. the key-confusion attack); "none" signs nothing.
    ``kid`` defaults to the SigningKey's; ``headers`` are merged over the generated header last, and a
    ``None`` value there drops that header parameter (to mint tokens without ``kid`` or ``alg``).
    """
    header: dict[str, Any] = {"kid": kid or (key.kid if isinstance(key, SigningKey) else "none"), "alg": alg}
    header = _apply(header, headers or {})
    signing_input = f"{_b64_json(header)}.{_b64_json(dict(claims))}".encode("ascii")
    return f"{signing_input.decode('ascii')}.{_b64(_sign(signing_input, key, alg))}"


def _sign(signing_input: bytes, key: SigningKey | bytes | None, alg: str) -> bytes:
    """The signature bytes for ``alg``; the HMAC is computed by hand because PyJWT refuses PEM secrets."""
    if alg == "none":
        return b""
    if alg == "RS256":
        if not isinstance(key, SigningKey):
            raise TypeError("RS256 needs a SigningKey")
        return key.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    if alg == "HS256":
        secret = key.public_pem() if isinstance(key, SigningKey) else key
        if not isinstance(secret, bytes):
            raise TypeError("HS256 needs bytes or a SigningKey")
        return hmac.new(secret, signing_input, hashlib.sha256).digest()
    raise ValueError(f"mint does not support alg {alg!r}")


class JwksServer:
    """A Cognito-like user pool on 127.0.0.1: serves ``<anything>/.well-known/jwks.json`` and mints tokens.

    Use as a context manager. ``keys`` are the published keys (the first one signs by default);
    ``add_key``/``remove_key`` simulate rotation; ``mode`` makes the endpoint misbehave; ``hits`` counts
    JWKS requests. The issuer is ``http://127.0.0.1:<port>/<pool id>``, so a verifier given only the
    issuer derives the JWKS URL exactly as it does for real Cognito.
    """

    def __init__(self, keys: list[SigningKey] | None = None, pool_id: str = POOL_ID) -> None:
        self.keys: list[SigningKey] = list(keys) if keys else [new_key("key-1")]
        self.pool_id = pool_id
        self.mode: Mode = "ok"
        self.slow_s = 1.0
        self.hits = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        # A short poll interval: shutdown() waits for it, and tests start and stop many servers.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="jwks-server", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving; afterwards the port refuses connections (the "JWKS is down" case)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("JwksServer is not running: use it as a context manager")
        return self._httpd.server_address[1]

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.pool_id}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}{JWKS_PATH}"

    @property
    def key(self) -> SigningKey:
        """The key tokens are signed with by default."""
        return self.keys[0]

    def add_key(self, key: SigningKey) -> None:
        with self._lock:
            self.keys.append(key)

    def remove_key(self, kid: str) -> None:
        with self._lock:
            self.keys = [k for k in self.keys if k.kid != kid]

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        with self._lock:
            return {"keys": [k.public_jwk() for k in self.keys]}

    def access_claims(self, **overrides: Any) -> dict[str, Any]:
        """Claims of a Cognito access token (valid for an hour from now); ``overrides`` replace them.

        Keys with a ``cognito:`` prefix cannot be keyword names: pass ``**{"cognito:groups": [...]}``.
        An override of ``None`` deletes the claim.
        """
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": "8f3a1c2e-0000-4000-8000-000000000001",
            "cognito:groups": ["artists", "lighting"],
            "iss": self.issuer,
            "version": 2,
            "client_id": CLIENT_ID,
            "origin_jti": str(uuid.uuid4()),
            "event_id": str(uuid.uuid4()),
            "token_use": "access",
            "scope": "aws.cognito.signin.user.admin openid email",
            "auth_time": now - 60,
            "exp": now + 3600,
            "iat": now - 60,
            "jti": str(uuid.uuid4()),
            "username": "ada",
        }
        return _apply(claims, overrides)

    def id_claims(self, **overrides: Any) -> dict[str, Any]:
        """Claims of a Cognito id token (valid for an hour from now); ``overrides`` as in access_claims."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": "8f3a1c2e-0000-4000-8000-000000000001",
            "cognito:groups": ["artists", "lighting"],
            "email_verified": True,
            "iss": self.issuer,
            "cognito:username": "ada",
            "origin_jti": str(uuid.uuid4()),
            "aud": CLIENT_ID,
            "event_id": str(uuid.uuid4()),
            "token_use": "id",
            "auth_time": now - 60,
            "exp": now + 3600,
            "iat": now - 60,
            "jti": str(uuid.uuid4()),
            "email": "ada@studio.example",
        }
        return _apply(claims, overrides)

    def mint(self, claims: Mapping[str, Any], **kwargs: Any) -> str:
        """``mint`` with this pool's current key unless ``key=`` says otherwise."""
        kwargs.setdefault("key", self.key)
        return mint(claims, **kwargs)

    def _count_hit(self) -> None:
        with self._lock:
            self.hits += 1


def _handler_for(server: JwksServer) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``server`` (http.server instantiates handlers per request)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.endswith(JWKS_PATH):
                self._reply(404, b'{"message": "not found"}')
                return
            server._count_hit()
            if server.mode == "slow":
                time.sleep(server.slow_s)
            if server.mode == "http_error":
                self._reply(500, b'{"message": "internal error"}')
            elif server.mode == "bad_json":
                self._reply(200, b"<html>not json</html>")
            elif server.mode == "no_keys":
                self._reply(200, b'{"keys": []}')
            else:
                self._reply(200, json.dumps(server.jwks()).encode())

        def _reply(self, status: int, body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            """Silence per-request logging on stderr."""

    return Handler


def _apply(claims: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``claims`` with ``overrides`` applied, where an override of ``None`` removes the entry."""
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64_json(obj: Mapping[str, Any]) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def _b64_int(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))
