"""envoy/front-proxy.yaml end to end, as shipped: TLS on its listener, the real filter syncing from the real
control plane (which requires the filter token), the real server-everything behind it, a tools/call over HTTPS.
Placement as in test_sidecar.py; the certificate is a test one for 127.0.0.1."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from e2e.envoy import Envoy, PreparedBootstrap, start_envoy
from e2e.gateway import DEMO_POLICY, Build
from e2e.peers import start_everything
from e2e.processes import ProcessStartError
from e2e.rpc import initialize_request, messages_in, tool_call

from .support import FRONT_PROXY_YAML, load_bootstrap, make_test_certificate
from .test_sidecar import AGENT, TENANT, ControlPlane, free_loopback_port, place, promote_policy, start_control_plane

WASM_BUILD = Build("wasm")
"""The front proxy runs the wasm filter."""

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@dataclass
class FrontProxy:
    envoy: Envoy
    control_plane: ControlPlane
    certificate: Path

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.envoy.port}{path}"

    def client(self, **headers: str) -> httpx.Client:
        trusted = ssl.create_default_context(cafile=str(self.certificate))
        return httpx.Client(verify=trusted, headers=headers, timeout=15, trust_env=False)


@pytest.fixture(scope="module")
def front_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontProxy]:
    workdir = tmp_path_factory.mktemp("front-proxy")
    tls_dir = make_test_certificate(workdir / "tls")
    with start_everything(log_path=workdir / "everything.log") as everything:
        control_plane = start_control_plane(workdir)
        try:
            promote_policy(control_plane, DEMO_POLICY.read_text())
            envoy = None
            for attempt in range(3):  # the admin port is chosen before Envoy binds it: retry if it was taken
                document = place(
                    load_bootstrap(FRONT_PROXY_YAML, tls_dir, control_plane.filter_token_file),
                    WASM_BUILD,
                    tool_server=everything.port,
                    control_plane=control_plane,
                    admin_port=free_loopback_port(),
                )
                try:
                    envoy = start_envoy(PreparedBootstrap(document), workdir / f"envoy-{attempt}", timeout=120)
                    break
                except ProcessStartError:
                    if attempt == 2:
                        raise
            assert envoy is not None
            try:
                envoy.wait_for_stat(
                    WASM_BUILD.stat("intentgate.sync.updates"), lambda v: v > 0, timeout=30, what="a state update"
                )
                yield FrontProxy(envoy, control_plane, tls_dir / "tls.crt")
            finally:
                envoy.stop()
        finally:
            control_plane.process.stop()


def rpc(client: httpx.Client, url: str, body: dict, session: str | None = None) -> tuple[httpx.Response, dict]:
    headers = {"mcp-session-id": session, "mcp-protocol-version": "2025-06-18"} if session else {}
    answer = client.post(url, json=body, headers=headers)
    (message,) = [m for m in messages_in(answer.headers.get("content-type", ""), answer.content) if "id" in m]
    return answer, message


def test_front_proxy_serves_a_tools_call_over_tls_end_to_end(front_proxy: FrontProxy) -> None:
    with front_proxy.client(authorization=f"Bearer {front_proxy.control_plane.admin_token}") as admin:
        minted = admin.post(front_proxy.url("/v1/admin/mint"), json={"subject": AGENT, "tenant": TENANT, "tools": ["echo", "get-env"]})
    assert minted.status_code == 200, minted.text
    mcp_url = front_proxy.url("/v1/mcp")
    with front_proxy.client(authorization=f"Bearer {minted.json()['token']}", **ACCEPT) as agent:
        opened, _ = rpc(agent, mcp_url, initialize_request())
        session = opened.headers["mcp-session-id"]
        agent.post(mcp_url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers={"mcp-session-id": session})
        _, allowed = rpc(agent, mcp_url, tool_call("echo", {"message": "through the front proxy"}), session)
        _, denied = rpc(agent, mcp_url, tool_call("get-env", {}, id=2), session)
    assert allowed["result"]["content"][0]["text"] == "Echo: through the front proxy"
    assert denied["error"]["code"] == -32012


def test_front_proxy_speaks_only_tls(front_proxy: FrontProxy) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{front_proxy.envoy.port}/healthz", timeout=5, trust_env=False)
