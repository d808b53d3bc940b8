"""Cognito JWT verification against a local JWKS server: every rejection has its own, specific message.

No AWS: tests.fakes.jwks_server serves the JWKS on 127.0.0.1 and mints tokens the way Cognito does.
RSA keys are generated once per module (key generation dominates the run time otherwise).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cgchat.auth import ANONYMOUS, AuthError, CognitoVerifier, Principal, bearer_token
from tests.fakes.jwks_server import CLIENT_ID, JwksServer, SigningKey, mint, new_key


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {name: new_key(name) for name in ("key-1", "key-2", "rogue")}


@pytest.fixture(scope="module")
def pool(keys: dict[str, SigningKey]) -> Iterator[JwksServer]:
    """A pool shared by the tests that do not count hits or change keys."""
    with JwksServer([keys["key-1"]]) as server:
        yield server


@pytest.fixture
def fresh_pool(keys: dict[str, SigningKey]) -> Iterator[JwksServer]:
    """A pool of its own, for tests that count JWKS hits, rotate keys or break the endpoint."""
    with JwksServer([keys["key-1"]]) as server:
        yield server


def verifier_for(server: JwksServer, **kwargs: Any) -> CognitoVerifier:
    """A verifier for the fake pool; the JWKS URL is derived from the issuer as for real Cognito."""
    kwargs.setdefault("app_client_ids", [CLIENT_ID])
    return CognitoVerifier(region=None, user_pool_id=None, issuer=server.issuer, **kwargs)


def rejection(verifier: CognitoVerifier, token: str) -> AuthError:
    with pytest.raises(AuthError) as caught:
        verifier.verify(token)
    assert token not in str(caught.value) or not token
    return caught.value


# --- configuration -------------------------------------------------------------------------------


def test_issuer_and_jwks_url_default_to_cognito() -> None:
    verifier = CognitoVerifier("eu-west-1", "eu-west-1_AbC123", ["app"])
    assert verifier.issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
    assert verifier.jwks_url == f"{verifier.issuer}/.well-known/jwks.json"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"region": "eu-west-1", "user_pool_id": "p", "app_client_ids": []}, "app_client_ids"),
        ({"region": None, "user_pool_id": None, "app_client_ids": ["a"]}, "region and user_pool_id"),
        ({"region": "r", "user_pool_id": "p", "app_client_ids": ["a"], "token_use": "both"}, "token_use"),
    ],
)
def test_misconfiguration_fails_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CognitoVerifier(**kwargs)


def test_anonymous_principal() -> None:
    assert ANONYMOUS.sub == "local"
    assert ANONYMOUS.groups == () and ANONYMOUS.scopes == ()


# --- valid tokens --------------------------------------------------------------------------------


def test_valid_access_token(pool: JwksServer) -> None:
    claims = pool.access_claims()
    principal = verifier_for(pool).verify(pool.mint(claims))

    assert principal == Principal(
        sub=claims["sub"],
        username="ada",
        token_use="access",
        client_id=CLIENT_ID,
        scopes=("aws.cognito.signin.user.admin", "openid", "email"),
        groups=("artists", "lighting"),
        email=None,
    )
    assert principal.claims["jti"] == claims["jti"]
    with pytest.raises(TypeError):
        principal.claims["sub"] = "someone-else"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        principal.sub = "someone-else"  # type: ignore[misc]
    assert hash(principal) == hash(dataclasses.replace(principal))
    assert "jti" not in repr(principal)


@pytest.mark.parametrize("token_use", ["id", "any"])
def test_valid_id_token(pool: JwksServer, token_use: str) -> None:
    principal = verifier_for(pool, token_use=token_use).verify(pool.mint(pool.id_claims()))
    assert principal.token_use == "id"
    assert principal.client_id == CLIENT_ID
    assert principal.username == "ada"
    assert principal.email == "ada@studio.example"
    assert principal.groups == ("artists", "lighting")
    assert principal.scopes == ()


def test_any_accepts_access_tokens_too(pool: JwksServer) -> None:
    assert verifier_for(pool, token_use="any").verify(pool.mint(pool.access_claims())).token_use == "access"


def test_user_in_no_group_and_several_app_clients(pool: JwksServer) -> None:
    verifier = verifier_for(pool, app_client_ids=["web-client", "cli-client"])
    claims = pool.access_claims(client_id="cli-client", **{"cognito:groups": None})
    principal = verifier.verify(pool.mint(claims))
    assert principal.groups == () and principal.client_id == "cli-client"


def test_expiry_within_leeway_is_accepted(pool: JwksServer) -> None:
    token = pool.mint(pool.access_claims(exp=int(time.time()) - 10))
    assert verifier_for(pool, leeway_s=30).verify(token).username == "ada"


# --- rejected tokens: each with its own message --------------------------------------------------


def test_expired(pool: JwksServer) -> None:
    token = pool.mint(pool.access_claims(exp=int(time.time()) - 31))
    assert rejection(verifier_for(pool, leeway_s=30), token).message == "token expired"


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_issued_in_the_future(pool: JwksServer, claim: str) -> None:
    token = pool.mint(pool.access_claims(**{claim: int(time.time()) + 300}))
    assert rejection(verifier_for(pool), token).message == "token is not valid yet (iat/nbf in the future)"


@pytest.mark.parametrize("claim", ["exp", "sub", "token_use"])
def test_missing_required_claim(pool: JwksServer, claim: str) -> None:
    token = pool.mint(pool.access_claims(**{claim: None}))
    assert rejection(verifier_for(pool), token).message == f"token has no {claim} claim"


def test_wrong_issuer(pool: JwksServer) -> None:
    token = pool.mint(pool.access_claims(iss="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other"))
    assert rejection(verifier_for(pool), token).message == "wrong issuer"


def test_issuer_must_match_exactly(pool: JwksServer) -> None:
    token = pool.mint(pool.access_claims(iss=pool.issuer + "/"))
    assert rejection(verifier_for(pool), token).message == "wrong issuer"


def test_other_pools_tokens_do_not_trigger_jwks_fetches(
    fresh_pool: JwksServer, keys: dict[str, SigningKey]
) -> None:
    other = mint(fresh_pool.access_claims(iss="https://elsewhere.example/pool"), key=keys["rogue"])
    assert rejection(verifier_for(fresh_pool), other).message == "wrong issuer"
    assert fresh_pool.hits == 0


def test_access_token_for_another_app_client(pool: JwksServer) -> None:
    token = pool.mint(pool.access_claims(client_id="someone-elses-app"))
    assert rejection(verifier_for(pool), token).message == "token was issued for another app client"


def test_id_token_for_another_app_client(pool: JwksServer) -> None:
    token = pool.mint(pool.id_claims(aud="someone-elses-app"))
    assert rejection(verifier_for(pool, token_use="id"), token).message == (
        "token was issued for another app client"
    )


def test_access_token_without_client_id(pool: JwksServer) -> None:
    token = pool.mint(pool.access_claims(client_id=None, aud=CLIENT_ID))
    assert rejection(verifier_for(pool), token).message == "token has no client_id claim"


def test_id_token_where_access_token_is_required(pool: JwksServer) -> None:
    token = pool.mint(pool.id_claims())
    assert rejection(verifier_for(pool), token).message == "token_use must be access"


def test_access_token_where_id_token_is_required(pool: JwksServer) -> None:
    token = pool.mint(pool.access_claims())
    assert rejection(verifier_for(pool, token_use="id"), token).message == "token_use must be id"


def test_unknown_token_use_with_any(pool: JwksServer) -> None:
    token = pool.mint(pool.access_claims(token_use="refresh"))
    assert rejection(verifier_for(pool, token_use="any"), token).message == "token_use must be access or id"


def test_unknown_kid(pool: JwksServer, keys: dict[str, SigningKey]) -> None:
    token = mint(pool.access_claims(), key=keys["rogue"])
    assert rejection(verifier_for(pool), token).message == "unknown signing key"


def test_missing_kid(pool: JwksServer) -> None:
    token = pool.mint(pool.access_claims(), headers={"kid": None})
    assert rejection(verifier_for(pool), token).message == "unknown signing key: token header has no kid"


def test_foreign_key_claiming_our_kid(pool: JwksServer, keys: dict[str, SigningKey]) -> None:
    token = mint(pool.access_claims(), key=keys["rogue"], kid=pool.key.kid)
    assert rejection(verifier_for(pool), token).message == "invalid signature"


def test_alg_none(pool: JwksServer) -> None:
    token = mint(pool.access_claims(), key=None, kid=pool.key.kid, alg="none")
    assert rejection(verifier_for(pool), token).message == "unsupported algorithm none: only RS256"


def test_hs256_signed_with_the_public_key(pool: JwksServer) -> None:
    """The key-confusion attack: the public PEM (anyone can derive it from the JWKS) as HMAC secret."""
    token = mint(pool.access_claims(), key=pool.key.public_pem(), kid=pool.key.kid, alg="HS256")
    assert rejection(verifier_for(pool), token).message == "unsupported algorithm HS256: only RS256"


def test_missing_alg(pool: JwksServer) -> None:
    token = pool.mint(pool.access_claims(), headers={"alg": None})
    assert rejection(verifier_for(pool), token).message == "unsupported algorithm (none given): only RS256"


def test_tampered_payload(pool: JwksServer) -> None:
    header, _, signature = pool.mint(pool.access_claims()).split(".")
    forged = pool.access_claims(**{"cognito:groups": ["admins"]})
    payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    token = f"{header}.{payload}.{signature}"
    assert rejection(verifier_for(pool), token).message == "invalid signature"


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "a.b",
        "....",
        "eyJhbGciOiJSUzI1NiJ9",
        "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln",  # payload is not JSON
        "bm90IGpzb24.e30.c2ln",  # header is not JSON
        "WyJSUzI1NiJd.e30.c2ln",  # header is a JSON list
    ],
)
def test_garbage_is_a_malformed_token(pool: JwksServer, token: str) -> None:
    assert rejection(verifier_for(pool), token).message == "malformed token"


@pytest.mark.parametrize("token", ["", "   "])
def test_empty_token(pool: JwksServer, token: str) -> None:
    assert rejection(verifier_for(pool), token).message == "missing bearer token"


def test_rejections_are_401_and_never_leak_the_token(
    pool: JwksServer, keys: dict[str, SigningKey], caplog: pytest.LogCaptureFixture
) -> None:
    verifier = verifier_for(pool)
    tokens = [
        pool.mint(pool.access_claims(exp=int(time.time()) - 3600)),
        pool.mint(pool.id_claims()),
        mint(pool.access_claims(), key=keys["rogue"]),
        mint(pool.access_claims(), key=pool.key.public_pem(), kid=pool.key.kid, alg="HS256"),
    ]
    with caplog.at_level(logging.DEBUG, logger="cgchat.auth"):
        for token in tokens:
            error = rejection(verifier, token)
            assert error.status == 401
            for part in token.split("."):
                assert part not in repr(error)
                assert part not in caplog.text
    assert "token rejected" in caplog.text


# --- the Authorization header --------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Bearer abc.def.ghi", "bearer abc.def.ghi", "BEARER   abc.def.ghi  "])
def test_bearer_token(header: str) -> None:
    assert bearer_token(header) == "abc.def.ghi"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing bearer token"),
        ("", "missing bearer token"),
        ("Bearer", "missing bearer token"),
        ("Bearer   ", "missing bearer token"),
        ("Basic dXNlcjpwYXNz", "authorization header must use the Bearer scheme"),
        ("eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "authorization header must use the Bearer scheme"),
        ("Bearer abc def", "malformed authorization header: expected 'Bearer <token>'"),
    ],
)
def test_bad_authorization_header(header: str | None, message: str) -> None:
    with pytest.raises(AuthError) as caught:
        bearer_token(header)
    assert caught.value.message == message
    assert caught.value.status == 401


# --- the JWKS: caching, rotation, outages --------------------------------------------------------


def test_keys_are_fetched_once(fresh_pool: JwksServer) -> None:
    verifier = verifier_for(fresh_pool)
    for _ in range(25):
        verifier.verify(fresh_pool.mint(fresh_pool.access_claims()))
    assert fresh_pool.hits == 1


def test_unknown_kids_do_not_hammer_the_jwks(fresh_pool: JwksServer, keys: dict[str, SigningKey]) -> None:
    """PyJWT refetches for an unknown kid at most once per cooldown (default 30 s) since the last fetch."""
    verifier = verifier_for(fresh_pool)
    verifier.verify(fresh_pool.mint(fresh_pool.access_claims()))
    for n in range(10):
        token = mint(fresh_pool.access_claims(), key=keys["rogue"], kid=f"made-up-{n}")
        assert rejection(verifier, token).message == "unknown signing key"
    assert fresh_pool.hits == 1


def test_unknown_kid_refetches_once_when_cooldown_allows(
    fresh_pool: JwksServer, keys: dict[str, SigningKey]
) -> None:
    verifier = verifier_for(fresh_pool, jwks_refresh_cooldown_s=0)
    verifier.verify(fresh_pool.mint(fresh_pool.access_claims()))
    assert rejection(verifier, mint(fresh_pool.access_claims(), key=keys["rogue"])).message == (
        "unknown signing key"
    )
    assert fresh_pool.hits == 2


def test_key_rotation(fresh_pool: JwksServer, keys: dict[str, SigningKey]) -> None:
    verifier = verifier_for(fresh_pool, jwks_refresh_cooldown_s=0)
    verifier.verify(fresh_pool.mint(fresh_pool.access_claims()))
    assert fresh_pool.hits == 1

    fresh_pool.add_key(keys["key-2"])
    for _ in range(5):
        principal = verifier.verify(fresh_pool.mint(fresh_pool.access_claims(), key=keys["key-2"]))
        assert principal.username == "ada"
    verifier.verify(fresh_pool.mint(fresh_pool.access_claims(), key=keys["key-1"]))
    assert fresh_pool.hits == 2


def test_withdrawn_key_is_refused_once_the_cached_jwks_expires(
    fresh_pool: JwksServer, keys: dict[str, SigningKey]
) -> None:
    """Why the verifier avoids PyJWKClient(cache_keys=True): that per-kid cache never forgets a key."""
    fresh_pool.add_key(keys["key-2"])
    verifier = verifier_for(fresh_pool, jwks_lifespan_s=0.2)
    token = fresh_pool.mint(fresh_pool.access_claims(), key=keys["key-2"])
    verifier.verify(token)

    fresh_pool.remove_key("key-2")
    time.sleep(0.25)
    assert rejection(verifier, token).message == "unknown signing key"
    assert fresh_pool.hits == 2


def test_cached_keys_outlive_a_jwks_outage(fresh_pool: JwksServer) -> None:
    verifier = verifier_for(fresh_pool)
    verifier.verify(fresh_pool.mint(fresh_pool.access_claims()))
    token = fresh_pool.mint(fresh_pool.access_claims())
    fresh_pool.stop()
    assert verifier.verify(token).username == "ada"


def test_jwks_down(fresh_pool: JwksServer, caplog: pytest.LogCaptureFixture) -> None:
    verifier = verifier_for(fresh_pool)
    token = fresh_pool.mint(fresh_pool.access_claims())
    host = f"127.0.0.1:{fresh_pool.port}"
    fresh_pool.stop()

    with caplog.at_level(logging.WARNING, logger="cgchat.auth"):
        error = rejection(verifier, token)
    assert (error.status, error.message) == (503, f"cannot fetch signing keys from {host}")
    assert "cannot fetch signing keys" in caplog.text


@pytest.mark.parametrize("mode", ["bad_json", "http_error", "no_keys", "slow"])
def test_jwks_misbehaving(fresh_pool: JwksServer, mode: str) -> None:
    fresh_pool.mode = mode  # type: ignore[assignment]
    fresh_pool.slow_s = 1.0
    verifier = verifier_for(fresh_pool, jwks_timeout_s=0.2)

    error = rejection(verifier, fresh_pool.mint(fresh_pool.access_claims()))
    host = f"127.0.0.1:{fresh_pool.port}"
    assert (error.status, error.message) == (503, f"cannot fetch signing keys from {host}")

    fresh_pool.mode = "ok"  # recovers on the next request: failures are not cached
    assert verifier.verify(fresh_pool.mint(fresh_pool.access_claims())).username == "ada"
