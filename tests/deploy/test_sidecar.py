"""envoy/sidecar.yaml and envoy/sidecar-native.yaml end to end, as shipped: the real Envoy runs each with its
build of the filter (wasm, native module), in front of the real server-everything on loopback, syncing over gRPC
from the real control plane binary (a temporary SQLite database, a known master key) that requires the filter
token, read from a file; a real MCP client calls tools through it.

Besides single calls, the README's runbooks run here against the deployed shape: upgrading a policy and rolling
it back, rotating the signing key and retiring the old one, each observed through the sidecar; and for the
native module, rotating the filter token by rewriting its file.

The only changes made to the files are placements, each named in ``place``: listen on loopback ports the kernel
picks, dial the peers this test started instead of the pod's 127.0.0.1:3001 and the control plane's Kubernetes
DNS name, load the built filter instead of /etc/intentgate/filter/…, read the token from this test's file, and
the node id Kubernetes passes with --service-node. Routes, timeouts, the filter and its configuration are the
files' own.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio import sleep as anyio_sleep

from e2e.envoy import Envoy, PreparedBootstrap, start_envoy
from e2e.gateway import BUILDS, DEMO_POLICY, Build
from e2e.mcp_client import MCPError, open_mcp_session, text_of
from e2e.peers import EverythingServer, start_everything
from e2e.rpc import RawMcp, initialize_request, tool_call
from e2e.processes import REPO_ROOT, ManagedProcess, ProcessStartError, loopback_listening_ports

from .support import (
    SIDECAR_NATIVE_YAML,
    SIDECAR_YAML,
    clusters,
    listeners,
    load_bootstrap,
    native_filter,
    plugin_configuration,
)

CONTROL_PLANE_BIN = REPO_ROOT / "target" / "debug" / "intentgate-control-plane"
TENANT = "demo"
AGENT = "sidecar-agent"
SIDECAR_FILES = {"wasm": SIDECAR_YAML, "native": SIDECAR_NATIVE_YAML}


@dataclass
class ControlPlane:
    process: ManagedProcess
    http_port: int
    grpc_port: int
    admin_token: str
    log_path: Path
    filter_token_file: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"authorization": f"Bearer {self.admin_token}"}, timeout=10, trust_env=False
        )

    def restart(self, filter_token: str) -> None:
        """Stops the binary and starts it again on the same ports and database, requiring ``filter_token``:
        the filter-token rotation, as a Deployment rolled with the new Secret does it."""
        self.process.stop()
        env = {
            **self.env,
            "INTENTGATE_FILTER_TOKEN": filter_token,
            "INTENTGATE_HTTP_ADDR": f"127.0.0.1:{self.http_port}",
            "INTENTGATE_GRPC_ADDR": f"127.0.0.1:{self.grpc_port}",
        }
        restarted = launch_control_plane(self.log_path.parent, env)
        assert (restarted.http_port, restarted.grpc_port) == (self.http_port, self.grpc_port)
        self.process, self.env = restarted.process, env


def start_control_plane(workdir: Path) -> ControlPlane:
    """The real binary on ports the kernel picks, requiring a filter token (also written to a file)."""
    filter_token = secrets.token_urlsafe(24)
    (workdir / "filter-token").write_text(filter_token)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "RUST_LOG": "info",
        "INTENTGATE_ADMIN_TOKEN": secrets.token_urlsafe(24),
        "INTENTGATE_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "INTENTGATE_DATABASE_URL": f"sqlite://{workdir / 'intentgate.db'}?mode=rwc",
        "INTENTGATE_HTTP_ADDR": "127.0.0.1:0",
        "INTENTGATE_GRPC_ADDR": "127.0.0.1:0",
        "INTENTGATE_PUBLIC_URL": "https://gateway.example.com",
        # Filters without it are refused: the sidecar must present it (read from a file).
        "INTENTGATE_FILTER_TOKEN": filter_token,
    }
    return launch_control_plane(workdir, env)


def launch_control_plane(workdir: Path, env: dict[str, str]) -> ControlPlane:
    """Starts the binary with ``env``; its HTTP port is the one answering /healthz, the other one its gRPC port."""
    if not CONTROL_PLANE_BIN.exists():
        raise ProcessStartError(f"{CONTROL_PLANE_BIN} is missing: cargo build -p intentgate-control-plane")
    process = ManagedProcess(
        "control-plane", [str(CONTROL_PLANE_BIN)], log_path=workdir / "control-plane.log", env=env, cwd=workdir
    ).start()
    probe = httpx.Client(timeout=2, trust_env=False)

    def http_port() -> int | None:
        for _, port in loopback_listening_ports(process.pid):
            try:
                if probe.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    return port
            except httpx.HTTPError:
                continue
        return None

    try:
        http = process.wait_until(http_port, timeout=60, what="answered /healthz")
        # Both listeners open before the process serves; a moment of grace for the second.
        grpc = process.wait_until(
            lambda: next((p for _, p in loopback_listening_ports(process.pid) if p != http), None),
            timeout=15,
            what=f"listened on a gRPC port (INTENTGATE_GRPC_ADDR) besides its HTTP port {http}",
        )
    except BaseException:
        process.stop()
        raise
    finally:
        probe.close()
    return ControlPlane(
        process, http, grpc, env["INTENTGATE_ADMIN_TOKEN"], process.log_path, workdir / "filter-token", env
    )


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def place(
    document: dict[str, Any], build: Build, *, tool_server: int, control_plane: ControlPlane, admin_port: int
) -> dict[str, Any]:
    """Puts the sidecar on this machine. Every listener and cluster of the file must be placed here, and the
    native module's control-plane address too, so a new one cannot reach for an address that only exists in a
    pod."""
    document["node"]["id"] = "sidecar-e2e"  # what --service-node sets in the pod
    document["admin"]["address"]["socket_address"].update(address="127.0.0.1", port_value=admin_port)
    by_listener = listeners(document)
    assert set(by_listener) == {"gateway", "probes"}, f"unplaced listeners: {set(by_listener)}"
    for listener in by_listener.values():
        listener["address"]["socket_address"].update(address="127.0.0.1", port_value=0)
    endpoints = {
        "tool_server": tool_server,
        "intentgate_control_plane_http": control_plane.http_port,
        "envoy_admin": admin_port,
    }
    if build.name == "wasm":
        endpoints["intentgate_control_plane_grpc"] = control_plane.grpc_port
    else:
        value = native_filter(by_listener["gateway"])["typed_config"]["filter_config"]
        plugin = json.loads(value["value"])
        assert plugin["control_plane"]["address"].startswith("http://intentgate-control-plane")
        plugin["control_plane"]["address"] = f"http://127.0.0.1:{control_plane.grpc_port}"
        value["value"] = json.dumps(plugin)
    by_cluster = clusters(document)
    assert set(by_cluster) == set(endpoints), f"unplaced clusters: {set(by_cluster) ^ set(endpoints)}"
    for name, port in endpoints.items():
        for group in by_cluster[name]["load_assignment"]["endpoints"]:
            for lb in group["lb_endpoints"]:
                lb["endpoint"]["address"]["socket_address"].update(address="127.0.0.1", port_value=port)
    return document


def promote_policy(control_plane: ControlPlane, rego: str) -> None:
    with control_plane.admin() as admin:
        draft = admin.post("/v1/admin/policies/drafts", json={"name": "sidecar-e2e", "rego_source": rego, "tenant": TENANT})
        assert draft.status_code == 201, draft.text
        active = admin.post("/v1/admin/policies/active", json={"draft_id": draft.json()["id"], "tenant": TENANT})
        assert active.status_code == 200, active.text


@dataclass
class Sidecar:
    build: Build
    envoy: Envoy
    control_plane: ControlPlane
    everything: EverythingServer
    probes_url: str

    def upstream_requests(self) -> int:
        return self.envoy.stat("cluster.tool_server.upstream_rq_total")


@pytest.fixture(scope="module", params=BUILDS, ids=str)
def sidecar(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    build: Build = request.param
    workdir = tmp_path_factory.mktemp(f"sidecar-{build}")
    with start_everything(log_path=workdir / "everything.log") as everything:
        control_plane = start_control_plane(workdir)
        try:
            # The policy exists before Envoy starts: the first snapshot already carries it.
            promote_policy(control_plane, DEMO_POLICY.read_text())
            envoy = None
            for attempt in range(3):  # the admin port is chosen before Envoy binds it: retry if it was taken
                admin_port = free_loopback_port()
                document = place(
                    load_bootstrap(SIDECAR_FILES[build.name], filter_token=control_plane.filter_token_file),
                    build,
                    tool_server=everything.port,
                    control_plane=control_plane,
                    admin_port=admin_port,
                )
                try:
                    envoy = start_envoy(PreparedBootstrap(document), workdir / f"envoy-{attempt}", timeout=120)
                    break
                except ProcessStartError:
                    if attempt == 2:
                        raise
            assert envoy is not None
            try:
                statuses = envoy.admin_get("/listeners", format="json").json()["listener_statuses"]
                (probes,) = [s for s in statuses if s["name"] == "probes"]
                probes_port = probes["local_address"]["socket_address"]["port_value"]
                yield Sidecar(build, envoy, control_plane, everything, f"http://127.0.0.1:{probes_port}")
            finally:
                envoy.stop()
        finally:
            control_plane.process.stop()


def wait_for_snapshot(sidecar: Sidecar) -> int:
    return sidecar.envoy.wait_for_stat(
        sidecar.build.stat("intentgate.sync.updates"),
        lambda v: v > 0,
        timeout=30,
        what="a state update applied from the control plane",
    )


def mint_through_the_sidecar(sidecar: Sidecar, tools: list[str], **claims: Any) -> str:
    answer = httpx.post(
        sidecar.envoy.url("/v1/admin/mint"),
        headers={"authorization": f"Bearer {sidecar.control_plane.admin_token}"},
        json={"subject": AGENT, "tenant": TENANT, "tools": tools, "ttl_seconds": 600, **claims},
        timeout=10,
        trust_env=False,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def test_sidecar_syncs_over_grpc_from_a_control_plane_that_requires_the_filter_token(sidecar: Sidecar) -> None:
    assert wait_for_snapshot(sidecar) > 0
    if sidecar.build.name == "wasm":
        assert sidecar.envoy.stat("cluster.intentgate_control_plane_grpc.upstream_cx_http2_total") >= 1
    else:
        assert "control_plane.token_file" in sidecar.envoy.log_text(), "the module says it read the token file"
    # The snapshot carried the promoted policy: the state version moved past the empty database's.
    assert sidecar.envoy.stat(sidecar.build.stat("intentgate.sync.version")) > 0
    assert "grpc status 16" not in sidecar.envoy.log_text(), "a call went out without the filter token"
    with sidecar.control_plane.admin() as admin:
        connected = [f for f in admin.get("/v1/admin/filters").json()["filters"] if f["connected"]]
    assert len(connected) == sidecar.build.subscriptions(), connected


def test_sidecar_routes_admin_calls_to_the_control_plane(sidecar: Sidecar) -> None:
    health = httpx.get(sidecar.envoy.url("/healthz"), timeout=10, trust_env=False)
    assert health.status_code == 200 and health.json()["database"] == "sqlite"
    refused = httpx.post(sidecar.envoy.url("/v1/admin/mint"), json={"subject": AGENT}, timeout=10, trust_env=False)
    assert refused.status_code == 401, "the admin API, not the filter, answers admin routes"
    assert mint_through_the_sidecar(sidecar, ["echo"])
    # The OAuth authorization server answers through the sidecar too, without a token.
    metadata = httpx.get(sidecar.envoy.url("/.well-known/oauth-authorization-server"), timeout=10, trust_env=False)
    token = httpx.post(sidecar.envoy.url("/oauth/token"), data={"grant_type": "client_credentials"}, timeout=10,
                       trust_env=False)
    assert metadata.status_code == 200 and metadata.json()["issuer"] == "https://gateway.example.com", metadata.text
    assert token.status_code == 401 and token.json()["error"] == "invalid_client", token.text


@pytest.mark.anyio
async def test_sidecar_serves_an_allowed_tools_call_end_to_end(sidecar: Sidecar) -> None:
    wait_for_snapshot(sidecar)
    token = mint_through_the_sidecar(sidecar, ["echo", "get-env"])
    before = sidecar.upstream_requests()
    async with open_mcp_session(sidecar.envoy.mcp_url, token=token) as mcp:
        result = await mcp.call_tool("echo", {"message": "through the sidecar"})
    assert text_of(result) == "Echo: through the sidecar"
    assert sidecar.upstream_requests() > before


@pytest.mark.anyio
async def test_sidecar_denies_a_call_the_synced_policy_forbids(sidecar: Sidecar) -> None:
    wait_for_snapshot(sidecar)
    token = mint_through_the_sidecar(sidecar, ["echo", "get-env"])
    async with open_mcp_session(sidecar.envoy.mcp_url, token=token) as mcp:
        with pytest.raises(MCPError) as denied:
            await mcp.call_tool("get-env", {})
    assert denied.value.code == -32012
    assert denied.value.data["rule"] == "no_env"


@pytest.mark.anyio
async def test_sidecar_ships_its_decisions_to_the_control_plane_audit_chain(sidecar: Sidecar) -> None:
    wait_for_snapshot(sidecar)
    token = mint_through_the_sidecar(sidecar, ["echo", "get-env"])
    marker = secrets.token_hex(4)
    async with open_mcp_session(sidecar.envoy.mcp_url, token=token) as mcp:
        await mcp.call_tool("echo", {"message": marker})
        with pytest.raises(MCPError):
            await mcp.call_tool("get-env", {})
    deadline = time.monotonic() + 20
    with sidecar.control_plane.admin() as admin:
        while True:
            page = admin.get("/v1/admin/audit", params={"tenant": TENANT, "limit": "1000"})
            assert page.status_code == 200, page.text
            calls = [e for e in page.json()["items"] if e["event"] == "intentgate.tool_call" and e["agent_id"] == AGENT]
            decided = {(e["tool"], e["decision"]) for e in calls}
            if {("echo", "allow"), ("get-env", "deny")} <= decided:
                break
            assert time.monotonic() < deadline, f"the filter's decisions did not reach the audit chain: {decided}"
            time.sleep(0.2)
        verified = admin.get("/v1/admin/audit/verify", params={"tenant": TENANT})
        assert verified.status_code == 200 and verified.json()["verified"] is True, verified.text


def test_sidecar_probe_port_serves_readiness_and_nothing_else(sidecar: Sidecar) -> None:
    ready = httpx.get(sidecar.probes_url + "/ready", timeout=5, trust_env=False)
    assert ready.status_code == 200 and ready.text.strip() == "LIVE"
    for path in ("/stats", "/config_dump", "/quitquitquit"):
        assert httpx.get(sidecar.probes_url + path, timeout=5, trust_env=False).status_code == 404, path
    assert httpx.post(sidecar.probes_url + "/ready", timeout=5, trust_env=False).status_code == 404


# --- the README's runbooks, through the sidecar -----------------------------------------------------

PAUSE_ECHO = """package intentgate.policy
import rego.v1

default decision := {"allow": true, "rule": "default_allow"}

decision := {"allow": false, "reason": "echo is paused", "rule": "pause_echo"} if {
    input.tool == "echo"
}
"""


def echo_call(sidecar: Sidecar, token: str) -> tuple[int | None, str | None]:
    """An echo tools/call through the sidecar in a new session: (None when it succeeded, else the JSON-RPC error
    code it got; the session id, when one was opened)."""
    with RawMcp(sidecar.envoy.mcp_url, token=token) as raw:
        opened = raw.post(initialize_request())
        if "error" in opened.message():
            return opened.message()["error"]["code"], None
        raw.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session_id=opened.session_id)
        answer = raw.post(tool_call("echo", {"message": "runbook"}), session_id=opened.session_id).message()
    return (answer["error"]["code"] if "error" in answer else None), opened.session_id


def echo_outcome(sidecar: Sidecar, token: str) -> int | None:
    return echo_call(sidecar, token)[0]


def wait_for_audit_of_session(admin: httpx.Client, session_id: str) -> None:
    """Until the filter's audit event for the session's tools/call is in the chain (its batch is shipped)."""

    def stored() -> bool:
        items = admin.get("/v1/admin/audit", params={"tenant": TENANT, "limit": "1000"}).json()["items"]
        return any(e["session_id"] == session_id and e["event"] == "intentgate.tool_call" for e in items)

    eventually(stored, True, f"the audit event of session {session_id}")


def eventually(probe: Any, expected: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (value := probe()) != expected:
        assert time.monotonic() < deadline, f"{what}: still {value!r}, expected {expected!r}"
        time.sleep(0.2)


def filters_caught_up(admin: httpx.Client) -> bool:
    """The README's check: every connected filter acknowledged the newest state version."""
    status = admin.get("/v1/admin/filters").json()
    connected = [f for f in status["filters"] if f["connected"]]
    return bool(connected) and all(f["acked_version"] >= status["state_version"] for f in connected)


def test_policy_upgrade_reaches_the_sidecar_and_rollback_restores_the_previous_one(sidecar: Sidecar) -> None:
    wait_for_snapshot(sidecar)
    token = mint_through_the_sidecar(sidecar, ["echo", "get-env"])
    assert echo_outcome(sidecar, token) is None
    with sidecar.control_plane.admin() as admin:
        before = admin.get("/v1/admin/policies/active", params={"tenant": TENANT}).json()
        draft = admin.post(
            "/v1/admin/policies/drafts", json={"name": "pause-echo", "rego_source": PAUSE_ECHO, "tenant": TENANT}
        )
        assert draft.status_code == 201, draft.text
        # Dry-run first: the recent calls replayed against the candidate, nothing changes.
        dry = admin.post(
            "/v1/admin/policies/dry-run", json={"rego_source": PAUSE_ECHO, "tenant": TENANT, "sample": "50"}
        )
        assert dry.status_code == 200, dry.text
        echoes = [d for d in dry.json()["decisions"] if d["input"].get("tool") == "echo"]
        assert echoes and {d["candidate_decision"] for d in echoes} == {"deny"}
        assert echo_outcome(sidecar, token) is None, "a dry run changes nothing"
        promoted = admin.post("/v1/admin/policies/active", json={"draft_id": draft.json()["id"], "tenant": TENANT})
        assert promoted.status_code == 200, promoted.text
        eventually(lambda: echo_outcome(sidecar, token), -32012, "the promoted policy through the sidecar")
        eventually(lambda: filters_caught_up(admin), True, "every filter acknowledging the promotion")
        rolled_back = admin.post("/v1/admin/policies/rollback", params={"tenant": TENANT})
        assert rolled_back.status_code == 200, rolled_back.text
        assert rolled_back.json()["draft_id"] == before["draft_id"]
        eventually(lambda: echo_outcome(sidecar, token), None, "the restored policy through the sidecar")


def test_signing_key_rotation_keeps_old_tokens_valid_until_the_old_key_is_retired(sidecar: Sidecar) -> None:
    wait_for_snapshot(sidecar)
    with sidecar.control_plane.admin() as admin:
        (old_key,) = [k for k in admin.get("/v1/admin/keys").json() if k["status"] == "active"]
        old_token = mint_through_the_sidecar(sidecar, ["echo"])
        rotated = admin.post("/v1/admin/keys/rotate")
        assert rotated.status_code == 200, rotated.text
        new_key = rotated.json()
        assert new_key["status"] == "active" and new_key["kid"] != old_key["kid"]
        eventually(lambda: filters_caught_up(admin), True, "every filter acknowledging the new key set")
        new_token = mint_through_the_sidecar(sidecar, ["echo"])
        assert echo_outcome(sidecar, new_token) is None, "a token signed by the new key"
        outcome, session = echo_call(sidecar, old_token)
        assert outcome is None and session is not None, "the old key stays trusted until retired"
        # The filter ships that call's audit event in the background. On SQLite the control plane answers a
        # retirement that races an audit batch with 503 "database is locked" (a read-then-write transaction;
        # reported): sequence this test's own writes so that it proves the runbook, not that race.
        wait_for_audit_of_session(admin, session)
        # The key that signs cannot be retired; the old one can.
        assert admin.delete(f"/v1/admin/keys/{new_key['kid']}").status_code == 409
        assert admin.delete(f"/v1/admin/keys/{old_key['kid']}").status_code == 204
        eventually(lambda: echo_outcome(sidecar, old_token), -32010, "the retired key's token through the sidecar")
        assert echo_outcome(sidecar, new_token) is None


# --- the native module's filter token, from a file ---------------------------------------------------


@pytest.mark.anyio
# Native only: the wasm sidecar's Envoy reads its token once, at start (credential_injector).
@pytest.mark.parametrize("sidecar", [b for b in BUILDS if b.name == "native"], indirect=True, ids=str)
async def test_native_sidecar_fails_closed_on_an_empty_token_file_and_follows_a_rewritten_one(
    sidecar: Sidecar,
) -> None:
    """The filter-token rotation: the control plane restarts with a new token; while the file is empty the module
    sends nothing (a budgeted call, which needs a lease, fails closed as with an unreachable control plane, and the
    log says why); once the file holds the new token the module follows it without a restart: the budgeted call
    passes and the decisions made meanwhile reach the audit chain."""
    wait_for_snapshot(sidecar)
    agent = "rotation-agent"
    token = mint_through_the_sidecar(sidecar, ["echo", "get-env"], max_calls=5, subject=agent)
    token_file = sidecar.control_plane.filter_token_file
    new_token = secrets.token_urlsafe(24)
    token_file.write_text("")
    sidecar.control_plane.restart(new_token)
    eventually(
        lambda: f"control_plane.token_file {token_file} is empty" in sidecar.envoy.log_text(),
        True,
        "the module's log line about the empty token file",
    )
    assert "failing closed" in sidecar.envoy.log_text()
    async with open_mcp_session(sidecar.envoy.mcp_url, token=token) as mcp:
        with pytest.raises(MCPError) as refused:
            await mcp.call_tool("echo", {"message": "without a lease"})
        assert refused.value.code == -32013, "no lease without the control plane: the budget check fails closed"
        with pytest.raises(MCPError) as denied:
            await mcp.call_tool("get-env", {})
        assert denied.value.code in (-32012, -32013)

    token_file.write_text(new_token + "\n")  # a trailing newline, as `kubectl create secret --from-file` keeps it
    marker = secrets.token_hex(4)

    async def echo_passes() -> bool:
        async with open_mcp_session(sidecar.envoy.mcp_url, token=token) as mcp:
            try:
                return text_of(await mcp.call_tool("echo", {"message": marker})) == f"Echo: {marker}"
            except MCPError as error:
                assert error.code == -32013, error
                return False

    deadline = time.monotonic() + 30
    while not await echo_passes():
        assert time.monotonic() < deadline, "the module did not follow the rewritten token file"
        await anyio_sleep(0.5)
    assert f"control_plane.token_file {token_file} read" in sidecar.envoy.log_text()
    with sidecar.control_plane.admin() as admin:

        def refused_and_allowed() -> bool:
            items = admin.get("/v1/admin/audit", params={"tenant": TENANT, "limit": "1000"}).json()["items"]
            calls = [e for e in items if e["event"] == "intentgate.tool_call" and e["agent_id"] == agent]
            return {("echo", "deny"), ("get-env", "deny"), ("echo", "allow")} <= {(e["tool"], e["decision"]) for e in calls}

        eventually(refused_and_allowed, True, "the decisions made while the token file was empty, in the chain")
