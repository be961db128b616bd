"""The token endpoint as a real OAuth client library sees it (authlib, httpx): client_credentials with
client_secret_basic, client_secret_post and private_key_jwt (RFC 7523), token exchange (RFC 8693), and the
RFC 6749 / RFC 8693 / RFC 8707 refusals authlib reports as their error codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .control_plane import ControlPlane

TENANT = "acme-corp"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
CAPABILITY = "urn:intentgate:token-type:capability"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    workdir = tmp_path_factory.mktemp("oauth-clients")
    control_plane = ControlPlane(workdir / "cp", f"sqlite://{workdir}/cp.db?mode=rwc")
    control_plane.extra_env["INTENTGATE_PUBLIC_URL"] = control_plane.url
    with control_plane.start():
        yield control_plane


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rsa_jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    as_bytes = lambda n: n.to_bytes((n.bit_length() + 7) // 8, "big")  # noqa: E731
    return {"kty": "RSA", "n": b64url(as_bytes(numbers.n)), "e": b64url(as_bytes(numbers.e))}


def hs256(claims: dict[str, Any]) -> str:
    """A JWT signed with a shared secret: an algorithm the server never accepts."""
    signing_input = f"{b64url(json.dumps({'alg': 'HS256'}).encode())}.{b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64url(hmac.new(b'secret', signing_input.encode(), hashlib.sha256).digest())}"


def token_endpoint(cp: ControlPlane) -> str:
    return f"{cp.url}/oauth/token"


def register(cp: ControlPlane, **fields: Any) -> dict[str, Any]:
    return cp.ok("POST", "/v1/admin/clients", json={"name": "authlib", "tenant": TENANT, **fields})


def session(client_id: str, secret: Any, method: Any = "client_secret_basic") -> OAuth2Client:
    return OAuth2Client(client_id, secret, token_endpoint_auth_method=method, trust_env=False, timeout=15)


def refusal(call: Any) -> tuple[str, str]:
    with pytest.raises(OAuthError) as raised:
        call()
    return raised.value.error, raised.value.description


def test_client_credentials_with_either_secret_method(cp: ControlPlane) -> None:
    client = register(cp, tools=["read_*", "echo"], ttl_seconds=600)
    for method in ("client_secret_basic", "client_secret_post"):
        with session(client["client_id"], client["client_secret"], method) as oauth:
            token = oauth.fetch_token(token_endpoint(cp), grant_type="client_credentials", scope="tool:echo")
        assert token["token_type"] == "Bearer" and token["scope"] == "tool:echo", token
        assert token["access_token"].startswith("igt1.")
        assert token["expires_in"] == 600


def test_private_key_jwt_client_authenticates_with_a_signed_assertion(cp: ControlPlane) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    client = register(cp, token_endpoint_auth_method="private_key_jwt", jwks={"keys": [rsa_jwk(key)]}, tools=["echo"])
    endpoint = token_endpoint(cp)
    with session(client["client_id"], pem, PrivateKeyJWT(endpoint)) as oauth:
        token = oauth.fetch_token(endpoint, grant_type="client_credentials")
        assert token["scope"] == "tool:echo"
        # authlib signs a fresh assertion (new jti) for every request.
        assert oauth.fetch_token(endpoint, grant_type="client_credentials")["access_token"] != token["access_token"]
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with session(client["client_id"], other, PrivateKeyJWT(endpoint)) as oauth:
        error, _ = refusal(lambda: oauth.fetch_token(endpoint, grant_type="client_credentials"))
    assert error == "invalid_client"


def test_rfc_6749_refusals_reach_the_client_as_their_codes(cp: ControlPlane) -> None:
    client = register(cp, tools=["read_*"])
    endpoint = token_endpoint(cp)
    with session(client["client_id"], "igcs_not-the-secret") as oauth:
        error, description = refusal(lambda: oauth.fetch_token(endpoint, grant_type="client_credentials"))
    assert (error, description) == ("invalid_client", "client authentication failed")
    with session(client["client_id"], client["client_secret"]) as oauth:
        assert refusal(lambda: oauth.fetch_token(endpoint, grant_type="client_credentials",
                                                 scope="tool:write_invoice"))[0] == "invalid_scope"
        assert refusal(lambda: oauth.fetch_token(endpoint, grant_type="client_credentials",
                                                 scope="profile"))[0] == "invalid_scope"
        assert refusal(lambda: oauth.fetch_token(endpoint, grant_type="password", username="u",
                                                 password="p"))[0] == "unsupported_grant_type"
        assert refusal(lambda: oauth.fetch_token(endpoint, grant_type=JWT_BEARER,
                                                 assertion="not-a-jwt"))[0] == "unauthorized_client"
        assert refusal(lambda: oauth.fetch_token(endpoint, grant_type="client_credentials",
                                                 resource="relative/path"))[0] == "invalid_target"
    jwt_client = register(cp, grant_types=[JWT_BEARER])
    with session(jwt_client["client_id"], jwt_client["client_secret"]) as oauth:
        forged = hs256({"iss": "https://idp.example.com", "sub": "x", "aud": cp.url, "exp": int(time.time()) + 60})
        assert refusal(lambda: oauth.fetch_token(endpoint, grant_type=JWT_BEARER, assertion=forged))[0] == "invalid_grant"
        assert refusal(lambda: oauth.fetch_token(endpoint, grant_type=JWT_BEARER))[0] == "invalid_request"


def test_rfc_8693_exchange_of_a_capability_token_and_its_refusals(cp: ControlPlane) -> None:
    client = register(cp, grant_types=[TOKEN_EXCHANGE])
    parent = cp.mint("agent-7", TENANT, tools=["read_*", "echo"], max_calls=5)["token"]
    endpoint = token_endpoint(cp)
    with session(client["client_id"], client["client_secret"]) as oauth:
        child = oauth.fetch_token(endpoint, grant_type=TOKEN_EXCHANGE, subject_token=parent,
                                  subject_token_type=CAPABILITY, scope="tool:read_invoice",
                                  resource="https://gateway.example.com/v1/mcp")
        assert child["issued_token_type"] == ACCESS_TOKEN and child["scope"] == "tool:read_invoice"
        narrower = child["access_token"]
        assert refusal(lambda: oauth.fetch_token(endpoint, grant_type=TOKEN_EXCHANGE, subject_token=narrower,
                                                 subject_token_type=CAPABILITY, scope="tool:echo"))[0] == "invalid_scope"
        assert refusal(lambda: oauth.fetch_token(endpoint, grant_type=TOKEN_EXCHANGE, subject_token=narrower,
                                                 subject_token_type=CAPABILITY,
                                                 resource="https://elsewhere.example.com/v1/mcp"))[0] == "invalid_target"
        assert refusal(lambda: oauth.fetch_token(endpoint, grant_type=TOKEN_EXCHANGE, subject_token=parent,
                                                 subject_token_type="urn:ietf:params:oauth:token-type:saml2"
                                                 ))[0] == "invalid_request"
        assert refusal(lambda: oauth.fetch_token(endpoint, grant_type=TOKEN_EXCHANGE, subject_token=parent,
                                                 subject_token_type=CAPABILITY, actor_token=parent,
                                                 actor_token_type=CAPABILITY))[0] == "invalid_request"
        assert refusal(lambda: oauth.fetch_token(endpoint, grant_type=TOKEN_EXCHANGE, subject_token="igt1.AAAA",
                                                 subject_token_type=CAPABILITY))[0] == "invalid_grant"
        revoked_parent = cp.mint("agent-9", TENANT)
        cp.revoke(revoked_parent["jti"])
        assert refusal(lambda: oauth.fetch_token(endpoint, grant_type=TOKEN_EXCHANGE,
                                                 subject_token=revoked_parent["token"],
                                                 subject_token_type=CAPABILITY))[0] == "invalid_grant"


def test_failed_authentications_are_limited_with_a_retry_hint(cp: ControlPlane) -> None:
    client = register(cp, tools=["echo"])
    endpoint = token_endpoint(cp)
    with session(client["client_id"], "igcs_guess") as oauth:
        for _ in range(10):
            assert refusal(lambda: oauth.fetch_token(endpoint, grant_type="client_credentials"))[0] == "invalid_client"
    limited = httpx.post(endpoint, data={"grant_type": "client_credentials"},
                         auth=(client["client_id"], client["client_secret"]), timeout=10, trust_env=False)
    assert limited.status_code == 429, limited.text
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json()["error"] == "invalid_client"
