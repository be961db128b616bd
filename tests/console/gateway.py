"""One gateway for the console tests: the real control plane, server-everything, and Envoy started from
`envoy/standalone.yaml` itself (the file `make run` uses), with its fixed ports swapped for free ones, so
the tests reach the console exactly as an operator does: through Envoy at `/console/`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.control_plane import ControlPlane
from e2e.envoy import Envoy, PreparedBootstrap, load_yaml_bootstrap, start_envoy
from e2e.mcp_client import open_mcp_session, text_of
from e2e.peers import EverythingServer, start_everything
from e2e.processes import REPO_ROOT
from e2e.rpc import RawMcp, tool_call
from e2e.test_control_plane import wait_for

TENANT = "acme-corp"
OTHER = "globex"
ACME_ADMIN = "acme-console-admin-token-0123456789"
GLOBEX_ADMIN = "globex-console-admin-token-0123456789"
TOOLS = ["echo", "get-sum", "get-env"]

POLICY = """package intentgate.policy
import rego.v1

default decision := {"allow": false, "reason": "not allowed", "rule": "default"}

decision := {"allow": true, "rule": "echo"} if { input.tool == "echo" }

decision := {"allow": true, "rule": "small_sum"} if {
    input.tool == "get-sum"
    input.args.a <= 100
}

decision := {"allow": false, "escalate": true, "reason": "large sums need a human", "rule": "large_sum"} if {
    input.tool == "get-sum"
    input.args.a > 100
}
"""


def standalone_bootstrap(everything: EverythingServer, control_plane: ControlPlane) -> PreparedBootstrap:
    """`envoy/standalone.yaml` with every fixed port replaced: free ones for the listener and admin, the
    test's peers for the clusters."""
    document = load_yaml_bootstrap(REPO_ROOT / "envoy" / "standalone.yaml")
    document["admin"]["address"]["socket_address"]["port_value"] = 0
    resources = document["static_resources"]
    resources["listeners"][0]["address"]["socket_address"]["port_value"] = 0
    ports = {"upstream": everything.port, "control_plane": control_plane.http_port, "control_plane_grpc": control_plane.grpc_port}
    for cluster in resources["clusters"]:
        for group in cluster["load_assignment"]["endpoints"]:
            for endpoint in group["lb_endpoints"]:
                endpoint["endpoint"]["address"]["socket_address"]["port_value"] = ports[cluster["name"]]
    return PreparedBootstrap(document)


@dataclass
class Gateway:
    cp: ControlPlane
    envoy: Envoy

    @property
    def console_url(self) -> str:
        return self.envoy.url("/console/")

    def in_sync(self) -> bool:
        status = self.cp.filters()
        connected = [f for f in status["filters"] if f["connected"]]
        return bool(connected) and all(f["acked_version"] == status["state_version"] for f in connected)

    def wait_in_sync(self) -> None:
        wait_for(self.in_sync, "every filter VM to acknowledge the current state", timeout=30)

    def token(self, subject: str, tenant: str = TENANT) -> dict[str, Any]:
        return self.cp.mint(subject, tenant, tools=TOOLS)

    def call_tool(self, token: str, tool: str, arguments: dict[str, Any]) -> str:
        """A tool call through Envoy with the real MCP client; the tool's text answer (errors raise). It runs
        on a thread of its own: Playwright's sync API keeps an event loop on the calling one."""

        async def run() -> str:
            async with open_mcp_session(self.envoy.mcp_url, token=token, timeout=180) as mcp:
                return text_of(await mcp.call_tool(tool, arguments))

        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, run()).result()

    def call_refused(self, token: str, tool: str, arguments: dict[str, Any]) -> int:
        """A call the filter refuses (answered by the filter, no session needed): its JSON-RPC error code."""
        with RawMcp(self.envoy.mcp_url, token=token) as raw:
            answer = raw.post(tool_call(tool, arguments)).message()
        assert "error" in answer, f"{tool} was not refused: {answer}"
        return answer["error"]["code"]


def start_gateway(stack: ExitStack, workdir: Path) -> Gateway:
    everything = stack.enter_context(start_everything(log_path=workdir / "everything.log"))
    control_plane = ControlPlane(
        workdir / "cp",
        f"sqlite://{workdir}/cp.db?mode=rwc",
        extra_env={
            "INTENTGATE_TENANT_ADMIN_TOKENS": f"{TENANT}:{ACME_ADMIN},{OTHER}:{GLOBEX_ADMIN}",
            # Heads only on demand: the console signs one when an event is newer than the latest.
            "INTENTGATE_AUDIT_TREE_HEAD_INTERVAL_SECS": "0",
        },
    ).start()
    stack.callback(control_plane.stop)
    control_plane.promote(TENANT, POLICY, name="baseline")
    control_plane.promote(OTHER, POLICY, name="globex-baseline")
    control_plane.settings(TENANT, approval_mode="sync", approval_timeout_secs=120)
    envoy = stack.enter_context(start_envoy(standalone_bootstrap(everything, control_plane), workdir / "envoy"))
    gateway = Gateway(control_plane, envoy)
    gateway.wait_in_sync()
    return gateway


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
