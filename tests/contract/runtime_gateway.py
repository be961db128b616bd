"""The runtime paths as a deployment serves them, for the contract tests: @modelcontextprotocol/server-everything
behind Envoy with the built filter, which follows the real control plane over gRPC (tests/e2e's harness); one
tenant whose policy allows, denies and escalates, whose intent rules narrow a prompt about invoices to reading
tools, and whose approvals are asynchronous (an escalation answers -32019 at once instead of holding the call)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.control_plane import ControlPlane
from e2e.envoy import Envoy
from e2e.gateway import Build, Issuer
from e2e.peers import start_everything
from e2e.rpc import RawMcp
from e2e.test_control_plane import gateway_envoy, in_sync, wait_for

BUILD = Build("wasm")
"""The runtime paths' contract is checked on the wasm build; the e2e differential test holds the native build to
the same answers."""
TENANT = "contract-corp"
AGENT = "contract-agent"
# Tools of server-everything the policy lets through: quick, with no side effects beyond the answer.
SAFE_TOOLS = ("echo", "get-sum", "get-tiny-image", "get-structured-content")
DENIED_TOOL = "get-env"
ESCALATED_TOOL = "get-annotated-message"
TOKEN_TOOLS = [*SAFE_TOOLS, DENIED_TOOL, ESCALATED_TOOL, "read_*"]
INVOICE_PROMPT = "summarise the open invoice for me"
_SAFE_SET = "{" + ", ".join(f'"{tool}"' for tool in SAFE_TOOLS) + "}"
POLICY = f"""package intentgate.policy
import rego.v1
default decision := {{"allow": false, "reason": "no rule allows this tool", "rule": "default_deny"}}
decision := {{"allow": true, "rule": "safe_tools"}} if {{ input.tool in {_SAFE_SET} }}
decision := {{"allow": false, "reason": "environment access is not allowed", "rule": "no_env"}} if {{
    input.tool == "{DENIED_TOOL}"
}}
decision := {{"allow": false, "escalate": true, "reason": "annotated messages need a human", "rule": "review"}} if {{
    input.tool == "{ESCALATED_TOOL}"
}}
"""
SETTINGS = {"approval_mode": "async", "approval_timeout_secs": 60}
INTENT_RULES = [{"id": "invoices", "keywords": ["invoice"], "allow": ["read_*"], "summary": "read invoices"}]


@dataclass
class RuntimeGateway:
    control_plane: ControlPlane
    envoy: Envoy

    @property
    def base_url(self) -> str:
        return self.envoy.base_url

    def mint(self, subject: str = AGENT, **fields: Any) -> dict[str, Any]:
        return self.control_plane.mint(subject, TENANT, **{"tools": TOKEN_TOOLS, **fields})

    def token(self, subject: str = AGENT, **fields: Any) -> str:
        return self.mint(subject, **fields)["token"]

    def foreign_token(self) -> str:
        """A well-formed token for the run's tenant, signed by a key the gateway does not trust."""
        return Issuer.generate().token(AGENT, TENANT, tools=TOKEN_TOOLS)

    def open_session(self, token: str) -> str:
        """A Streamable HTTP session through the gateway (initialize, then initialized); its id."""
        with RawMcp(self.envoy.mcp_url, token=token) as raw:
            return raw.initialize()

    def upstream_requests(self) -> int:
        return self.envoy.upstream_stat("upstream_rq_total")

    def sync(self, what: str, envoys: int = 1) -> None:
        """Waits until the filters of `envoys` Envoys on this control plane hold its current state."""
        wait_for(lambda: in_sync(self.control_plane, envoys * BUILD.subscriptions()), what)


@contextmanager
def runtime_gateway(workdir: Path) -> Iterator[RuntimeGateway]:
    workdir.mkdir(parents=True, exist_ok=True)
    with start_everything(log_path=workdir / "everything.log") as everything:
        control_plane = ControlPlane(workdir / "control-plane", f"sqlite://{workdir}/control-plane.db?mode=rwc").start()
        try:
            control_plane.promote(TENANT, POLICY, name="contract")
            control_plane.ok(
                "PUT",
                f"/v1/admin/tenants/{TENANT}/settings",
                json={"settings": SETTINGS, "intent_rules": INTENT_RULES},
            )
            with gateway_envoy(BUILD, everything, control_plane, workdir / "envoy", resource=True) as envoy:
                gateway = RuntimeGateway(control_plane, envoy)
                gateway.sync("every filter VM to take the tenant's policy and settings")
                yield gateway
        finally:
            control_plane.stop()
