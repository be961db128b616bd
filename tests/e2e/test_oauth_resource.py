"""The gateway as the resource server real MCP clients discover: the MCP Python SDK's OAuth providers, with no
header set by hand, get the filter's 401 and call a tool through the real filter to server-everything.
`ClientCredentialsOAuthProvider` and `PrivateKeyJWTOAuthProvider` follow its `WWW-Authenticate` to the
RFC 9728 metadata and the authorization server, and get a token bound to the resource from the control
plane's token endpoint through Envoy. `IdentityAssertionOAuthProvider` is configured with the authorization
server by design (SEP-990: the resource server is never asked), and presents an identity assertion grant
(ID-JAG) that a real OpenID provider (oidc-provider) issued."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp.client.auth import TokenStorage
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from .control_plane import ControlPlane, filter_config, free_port, protected_resource
from .envoy import Envoy, start_envoy
from .gateway import DEMO_POLICY
from .idp import Idp, start_idp
from .mcp_client import McpSession, open_mcp_session, text_of
from .peers import EverythingServer
from .test_control_plane import VMS_PER_ENVOY, in_sync, wait_for
from .test_oauth_clients import rsa_jwk
from .test_oauth_idp import oauth_gateway_config

TENANT = "acme-corp"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class MemoryStorage(TokenStorage):
    """What the SDK keeps between requests, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@pytest.fixture(scope="module")
def system(everything: EverythingServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir: Path = tmp_path_factory.mktemp("oauth-resource")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    control_plane = ControlPlane(workdir / "cp", f"sqlite://{workdir}/cp.db?mode=rwc")
    # The gateway's own URL is the issuer: clients reach the authorization server through Envoy.
    control_plane.extra_env["INTENTGATE_PUBLIC_URL"] = base
    control_plane.start()
    idp = start_idp(workdir / "idp")
    try:
        control_plane.promote(TENANT, DEMO_POLICY.read_text())
        trusted = control_plane.ok("POST", "/v1/admin/trusted-issuers", json={
            "name": "oidc-provider", "tenant": TENANT, "issuer": idp.issuer, "jwks_uri": idp.jwks_uri})
        control_plane.ok("POST", "/v1/admin/exchange-rules", json={
            "name": "enterprise agents", "tenant": TENANT, "trusted_issuer_id": trusted["id"],
            "subject_claim": "sub", "conditions": {"scope": ["mcp"]}, "ttl_seconds": 300})
        plugin = filter_config(control_plane)
        plugin["protected_resource"] = protected_resource(port, base)
        config = oauth_gateway_config(everything, control_plane, plugin, listen_port=port)
        with start_envoy(config, workdir / "envoy") as envoy:
            wait_for(lambda: in_sync(control_plane, VMS_PER_ENVOY), "every filter VM to sync")
            yield {"cp": control_plane, "envoy": envoy, "base": base, "idp": idp}
    finally:
        idp.stop()
        control_plane.stop()


def register(cp: ControlPlane, name: str, **fields: Any) -> dict[str, Any]:
    return cp.ok("POST", "/v1/admin/clients", json={"name": name, "tenant": TENANT, "ttl_seconds": 600, **fields})


def assert_discovered(mcp: McpSession, envoy: Envoy, base: str, *, metadata_read: bool = True) -> None:
    """The client's first request was answered 401, and it found the authorization server from there."""
    first = mcp.exchanges[0]
    assert (first.method, first.status) == ("POST", 401), mcp.exchanges
    metadata = f"{base}/.well-known/oauth-protected-resource/v1/mcp"
    assert first.headers["www-authenticate"] == f'Bearer resource_metadata="{metadata}"'
    urls = [(e.method, e.url, e.status) for e in mcp.exchanges]
    assert (("GET", metadata, 200) in urls) == metadata_read, urls
    assert ("GET", f"{base}/.well-known/oauth-authorization-server", 200) in urls, urls
    assert ("POST", f"{base}/oauth/token", 200) in urls, urls
    later = [e for e in mcp.exchanges if e.method == "POST" and e.url == envoy.mcp_url][1:]
    assert later and all(e.request_headers["authorization"].startswith("Bearer igt1.") for e in later), urls
    assert all(e.status in (200, 202) for e in later), urls


@pytest.mark.anyio
async def test_the_sdk_client_credentials_provider_discovers_the_server_and_calls_a_tool(
    system: dict[str, Any],
) -> None:
    cp, envoy, base = system["cp"], system["envoy"], system["base"]
    # Registered for some tools: the SDK asks for the scope the metadata names (tool:*) and gets those.
    client = register(cp, "sdk client credentials", tools=["echo", "get-sum"])
    provider = ClientCredentialsOAuthProvider(
        server_url=envoy.mcp_url, storage=MemoryStorage(), client_id=client["client_id"],
        client_secret=client["client_secret"], issuer=base,
    )
    async with open_mcp_session(envoy.mcp_url, auth=provider) as mcp:
        result = await mcp.call_tool("echo", {"message": "from the SDK"})
        echoed = text_of(result)
        assert "from the SDK" in echoed, result
        assert_discovered(mcp, envoy, base)
    tokens = provider.context.current_tokens
    assert tokens is not None and tokens.access_token.startswith("igt1.")
    issued = [e for e in cp.audit(TENANT) if e["method"] == "oauth/token" and e["agent_id"] == client["subject"]]
    assert issued, "the token endpoint's audit event"


@pytest.mark.anyio
async def test_the_sdk_private_key_jwt_provider_discovers_the_server_and_calls_a_tool(system: dict[str, Any]) -> None:
    cp, envoy, base = system["cp"], system["envoy"], system["base"]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    client = register(cp, "sdk private key jwt", token_endpoint_auth_method="private_key_jwt",
                      jwks={"keys": [rsa_jwk(key)]})
    assertion = SignedJWTParameters(issuer=client["client_id"], subject=client["client_id"], signing_key=pem)
    provider = PrivateKeyJWTOAuthProvider(
        server_url=envoy.mcp_url, storage=MemoryStorage(), client_id=client["client_id"],
        assertion_provider=assertion.create_assertion_provider(), issuer=base,
    )
    async with open_mcp_session(envoy.mcp_url, auth=provider) as mcp:
        result = await mcp.call_tool("echo", {"message": "signed in with a key"})
        echoed = text_of(result)
        assert "signed in with a key" in echoed, result
        assert_discovered(mcp, envoy, base)


@pytest.mark.anyio
async def test_the_sdk_identity_assertion_provider_presents_an_idp_issued_id_jag_and_calls_a_tool(
    system: dict[str, Any],
) -> None:
    cp, envoy, base = system["cp"], system["envoy"], system["base"]
    idp: Idp = system["idp"]
    client = register(cp, "sdk id-jag", grant_types=[JWT_BEARER], token_endpoint_auth_method="client_secret_post")
    asked: list[tuple[str, str]] = []

    async def id_jag(audience: str, resource: str) -> str:
        asked.append((audience, resource))
        return await anyio.to_thread.run_sync(lambda: idp.id_jag(audience, client["client_id"], resource))

    provider = IdentityAssertionOAuthProvider(
        server_url=envoy.mcp_url, storage=MemoryStorage(), client_id=client["client_id"],
        client_secret=client["client_secret"], issuer=base, assertion_provider=id_jag,
    )
    async with open_mcp_session(envoy.mcp_url, auth=provider) as mcp:
        result = await mcp.call_tool("echo", {"message": "an enterprise agent"})
        assert "an enterprise agent" in text_of(result), result
        assert_discovered(mcp, envoy, base, metadata_read=False)
    assert asked == [(base, f"{base}/v1/mcp")]
    issued = [e for e in cp.audit(TENANT) if e["method"] == "oauth/token" and e["agent_id"] == "agent-runner"]
    assert issued and idp.issuer in issued[0]["decided_by"], [e["decided_by"] for e in issued]
