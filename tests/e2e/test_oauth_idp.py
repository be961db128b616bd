"""The token endpoint against a real OpenID provider (oidc-provider): its JWT access token, exchanged through
Envoy at /oauth/token (RFC 8693), becomes a capability token that calls a tool through the real filter to
server-everything. Untrusted issuers, expired tokens, tokens for another audience and tampered signatures
are refused; every token issued is an event of the tenant's hash chain."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .control_plane import ControlPlane, filter_config
from .envoy import Envoy, EnvoyConfig, start_envoy, static_cluster
from .gateway import DEMO_POLICY, wasm_filter
from .idp import CLIENT_ID, Idp, start_idp
from .peers import EverythingServer
from .rpc import RawMcp, tool_call
from .test_control_plane import VMS_PER_ENVOY, in_sync, wait_for

TENANT = "acme-corp"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
CP_HTTP = "intentgate_control_plane_http"
_NO_FILTER = {
    "envoy.filters.http.wasm": {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}
}


def control_plane_route(prefix: str) -> dict[str, Any]:
    """`prefix` to the control plane's REST port, the IntentGate filter off (as envoy/standalone.yaml routes it)."""
    return {"match": {"prefix": prefix}, "route": {"cluster": CP_HTTP, "timeout": "30s"}, "typed_per_filter_config": _NO_FILTER}


@pytest.fixture(scope="module")
def system(everything: EverythingServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("oauth-idp")
    control_plane = ControlPlane(workdir / "cp", f"sqlite://{workdir}/cp.db?mode=rwc")
    # The issuer is the control plane's own base URL: tokens addressed to it are for this server.
    control_plane.extra_env["INTENTGATE_PUBLIC_URL"] = control_plane.url
    control_plane.start()
    idp = start_idp(workdir / "idp")
    # The same issuer and key, on a clock an hour behind: its tokens expired before they were issued here.
    late = start_idp(workdir / "idp-late", name="late", keys_file=workdir / "idp" / "idp.keys.json",
                     issuer=idp.issuer, clock_offset=-3600)
    stranger = start_idp(workdir / "idp-stranger", name="stranger")
    try:
        control_plane.promote(TENANT, DEMO_POLICY.read_text())
        trusted = control_plane.ok("POST", "/v1/admin/trusted-issuers", json={
            "name": "oidc-provider", "tenant": TENANT, "issuer": idp.issuer, "jwks_uri": idp.jwks_uri})
        control_plane.ok("POST", "/v1/admin/exchange-rules", json={
            "name": "agent runners", "tenant": TENANT, "trusted_issuer_id": trusted["id"],
            "subject_claim": "client_id", "conditions": {"scope": ["mcp"]},
            "tools": ["echo", "get-sum"], "ttl_seconds": 300, "max_calls": 10})
        plugin = filter_config(control_plane)
        config = EnvoyConfig(
            upstream_port=everything.port,
            http_filters=[wasm_filter(plugin)],
            extra_clusters=[
                static_cluster("intentgate_control_plane", "127.0.0.1", control_plane.grpc_port, http2=True),
                static_cluster(CP_HTTP, "127.0.0.1", control_plane.http_port),
            ],
            extra_routes=[control_plane_route("/oauth/"), control_plane_route("/.well-known/oauth-authorization-server")],
        )
        with start_envoy(config, workdir / "envoy") as envoy:
            wait_for(lambda: in_sync(control_plane, VMS_PER_ENVOY), "every filter VM to sync")
            yield {"cp": control_plane, "envoy": envoy, "idp": idp, "late": late, "stranger": stranger}
    finally:
        for process in (stranger, late, idp):
            process.stop()
        control_plane.stop()


def exchange(envoy: Envoy, subject_token: str, **extra: str) -> httpx.Response:
    return httpx.post(
        envoy.url("/oauth/token"),
        data={"grant_type": TOKEN_EXCHANGE, "subject_token": subject_token, "subject_token_type": ACCESS_TOKEN, **extra},
        timeout=15,
        trust_env=False,
    )


def call(envoy: Envoy, token: str, tool: str) -> dict[str, Any]:
    with RawMcp(envoy.mcp_url, token=token) as raw:
        session = raw.initialize()
        return raw.post(tool_call(tool, {"message": "from an IdP token", "a": 2, "b": 3}), session_id=session).message()


def test_an_idp_access_token_exchanged_through_envoy_calls_a_tool(system: dict[str, Any]) -> None:
    cp, envoy, idp = system["cp"], system["envoy"], system["idp"]
    metadata = httpx.get(envoy.url("/.well-known/oauth-authorization-server"), timeout=10, trust_env=False).json()
    assert metadata["issuer"] == cp.url and metadata["token_endpoint"] == f"{cp.url}/oauth/token"
    subject = idp.access_token(resource=cp.url)
    answer = exchange(envoy, subject, scope="tool:echo")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert (body["token_type"], body["scope"], body["issued_token_type"]) == ("Bearer", "tool:echo", ACCESS_TOKEN)
    assert 0 < body["expires_in"] <= 300
    capability = body["access_token"]
    echoed = call(envoy, capability, "echo")
    assert "from an IdP token" in json.dumps(echoed["result"]), echoed
    refused = call(envoy, capability, "get-sum")
    assert refused["error"]["code"] == -32010, "the scope narrowed the grant to echo"
    events = cp.audit(TENANT)
    issued = [e for e in events if e["method"] == "oauth/token"]
    assert issued and issued[0]["agent_id"] == CLIENT_ID
    assert issued[0]["decided_by"].startswith(f"issuer:{idp.issuer} sub:{CLIENT_ID}")
    assert subject not in json.dumps(issued) and capability not in json.dumps(issued)
    calls = wait_for(lambda: [e for e in cp.audit(TENANT) if e["event"] == "intentgate.tool_call"
                              and e["capability_token_id"] == issued[0]["capability_token_id"]], "the call's audit event")
    assert {e["decision"] for e in calls} >= {"allow"}
    assert cp.verify(TENANT)["verified"] is True


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["client_id"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize("case", ["untrusted issuer", "expired", "wrong audience", "tampered signature"])
def test_idp_tokens_that_must_not_count_are_refused(system: dict[str, Any], case: str) -> None:
    cp, envoy = system["cp"], system["envoy"]
    idp: Idp = system["idp"]
    subject = {
        "untrusted issuer": lambda: system["stranger"].access_token(resource=cp.url),
        "expired": lambda: system["late"].access_token(resource=cp.url),
        "wrong audience": lambda: idp.access_token(resource="https://another-service.example.com"),
        "tampered signature": lambda: tampered(idp.access_token(resource=cp.url)),
    }[case]()
    before = len([e for e in cp.audit(TENANT) if e["method"] == "oauth/token"])
    answer = exchange(envoy, subject)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_grant", answer.text
    assert len([e for e in cp.audit(TENANT) if e["method"] == "oauth/token"]) == before, "nothing was issued"
