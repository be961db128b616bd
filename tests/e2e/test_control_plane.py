"""The control plane and the filters as one system over gRPC (issue 5): state pushed to every filter
(policies, revocations, keys), audit events ingested into the hash chain with nothing lost or doubled
while the control plane is away, max_calls exact across Envoys, and replicas fanning changes out
through Postgres LISTEN/NOTIFY."""

from __future__ import annotations

import base64
import concurrent.futures
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from contract.pg_cluster import Cluster

from .control_plane import ControlPlane, filter_config, free_port, protected_resource
from .envoy import Envoy, EnvoyConfig, start_envoy, static_cluster
from .gateway import DEMO_POLICY, Build, cli
from .peers import EverythingServer
from .rpc import RawMcp, tool_call

TENANT = "acme-corp"
VMS_PER_ENVOY = Build("wasm").subscriptions()
"""Sync streams of one wasm-filter Envoy at the default concurrency (each worker VM and the main thread's), for
tests that run the wasm build only."""
TOOLS = ["echo", "get-sum", "get-env"]
DENY_ALL = """package intentgate.policy
import rego.v1
default decision := {"allow": false, "reason": "maintenance window", "rule": "maintenance"}
"""


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def gateway_envoy(
    build: Build,
    everything: EverythingServer,
    control_plane: ControlPlane,
    workdir: Path,
    *,
    resource: bool = False,
    **options: Any,
) -> Envoy:
    """An Envoy whose filter (of `build`) follows `control_plane`; `options` go into the plugin's `control_plane`
    section. `resource`: the filter is the OAuth resource server of its listener's URL, `control_plane` its
    authorization server."""
    plugin = filter_config(control_plane)
    plugin["control_plane"].update(options)
    listen_port = 0
    if resource:
        listen_port = free_port()
        plugin["protected_resource"] = protected_resource(listen_port, control_plane.url)
    config = EnvoyConfig(
        upstream_port=everything.port,
        listen_port=listen_port,
        http_filters=[build.filter(plugin)],
        extra_clusters=[static_cluster("intentgate_control_plane", "127.0.0.1", control_plane.grpc_port, http2=True)],
    )
    return start_envoy(config, workdir)


def in_sync(control_plane: ControlPlane, filters: int) -> bool:
    status = control_plane.filters()
    current = [f for f in status["filters"] if f["connected"] and f["acked_version"] == status["state_version"]]
    return len(current) >= filters


def call(envoy: Envoy, token: str, tool: str = "echo", session: str | None = None) -> dict[str, Any]:
    with RawMcp(envoy.mcp_url, token=token) as raw:
        session = session or raw.initialize()
        return raw.post(tool_call(tool, {"message": "m", "a": 1, "b": 2}), session_id=session).message()


def call_refused(envoy: Envoy, token: str, tool: str = "echo") -> dict[str, Any]:
    """A tools/call answered by the filter itself (no session: a refused call never reaches the upstream)."""
    with RawMcp(envoy.mcp_url, token=token) as raw:
        return raw.post(tool_call(tool, {"message": "m"})).message()


def kid_of(token: str) -> str:
    """The key id in a token's header (see filter/core/src/token/codec.rs)."""
    body = token.removeprefix("igt1.")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    return raw[2 : 2 + raw[1]].decode()


def code(answer: dict[str, Any]) -> int | None:
    return answer.get("error", {}).get("code")


@pytest.fixture(scope="module")
def system(
    build: Build, everything: EverythingServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Build, ControlPlane, Envoy]]:
    workdir = tmp_path_factory.mktemp(f"system-{build}")
    control_plane = ControlPlane(workdir / "cp", f"sqlite://{workdir}/cp.db?mode=rwc").start()
    try:
        control_plane.promote(TENANT, DEMO_POLICY.read_text())
        with gateway_envoy(build, everything, control_plane, workdir / "envoy") as envoy:
            wait_for(lambda: in_sync(control_plane, build.subscriptions()), "every filter to sync")
            yield build, control_plane, envoy
    finally:
        control_plane.stop()


def test_filter_enforces_what_the_control_plane_pushes(system: tuple[Build, ControlPlane, Envoy]) -> None:
    build, control_plane, envoy = system
    token = control_plane.mint("agent-1", TENANT, tools=TOOLS)["token"]
    assert "result" in call(envoy, token), "a token minted by the control plane verifies in the filter"
    control_plane.promote(TENANT, DENY_ALL, name="maintenance")
    wait_for(lambda: in_sync(control_plane, build.subscriptions()), "the promotion to reach every filter")
    denied = call(envoy, token)
    assert code(denied) == -32012 and denied["error"]["data"]["rule"] == "maintenance", denied
    control_plane.ok("POST", "/v1/admin/policies/rollback", params={"tenant": TENANT})
    wait_for(lambda: in_sync(control_plane, build.subscriptions()), "the rollback to reach every filter")
    assert "result" in call(envoy, token)
    control_plane.request("DELETE", "/v1/admin/policies/active", params={"tenant": TENANT})
    wait_for(lambda: in_sync(control_plane, build.subscriptions()), "the clear to reach every filter")
    cleared = call(envoy, token)
    assert code(cleared) == -32012 and "no active policy" in cleared["error"]["data"]["reason"], cleared
    control_plane.ok("POST", "/v1/admin/policies/rollback", params={"tenant": TENANT})
    wait_for(lambda: in_sync(control_plane, build.subscriptions()), "the restored policy to reach every filter")


def test_revoked_token_is_refused_by_the_filter(system: tuple[Build, ControlPlane, Envoy]) -> None:
    build, control_plane, envoy = system
    minted = control_plane.mint("agent-2", TENANT, tools=TOOLS)
    assert "result" in call(envoy, minted["token"])
    control_plane.revoke(minted["jti"])
    wait_for(lambda: in_sync(control_plane, build.subscriptions()), "the revocation to reach every filter")
    refused = call_refused(envoy, minted["token"])
    assert code(refused) == -32010 and "revoked" in refused["error"]["data"]["reason"], refused


def test_revoking_a_derived_block_or_its_root_refuses_it_in_its_tenant_only(system: tuple[Build, ControlPlane, Envoy]) -> None:
    build, control_plane, envoy = system
    root = control_plane.mint("agent-derived", TENANT, tools=TOOLS)
    child = cli("attenuate", "--token", root["token"], "--tools", "echo,get-sum")
    sibling = cli("attenuate", "--token", root["token"], "--tools", "echo")
    assert all("result" in call(envoy, t["token"]) for t in (root, child, sibling))

    # The same jtis revoked in another tenant reach none of them.
    for jti in (root["jti"], child["jti"]):
        control_plane.revoke(jti, tenant="globex")
    wait_for(lambda: in_sync(control_plane, build.subscriptions()), "globex's revocations to reach every filter")
    assert all("result" in call(envoy, t["token"]) for t in (root, child, sibling)), "another tenant's revocation"

    # A derived token's own block id (not minted by the control plane) refuses that token alone.
    control_plane.revoke(child["jti"], tenant=TENANT)
    wait_for(lambda: in_sync(control_plane, build.subscriptions()), "the derived token's revocation to reach every filter")
    refused = call_refused(envoy, child["token"])
    assert code(refused) == -32010 and child["jti"] in refused["error"]["data"]["reason"], refused
    assert "result" in call(envoy, sibling["token"]) and "result" in call(envoy, root["token"])

    # Revoking the root refuses it and every token derived from it.
    control_plane.revoke(root["jti"])
    wait_for(lambda: in_sync(control_plane, build.subscriptions()), "the root's revocation to reach every filter")
    for token in (root, sibling):
        refused = call_refused(envoy, token["token"])
        assert code(refused) == -32010 and root["jti"] in refused["error"]["data"]["reason"], refused
    listed = control_plane.ok("GET", "/v1/admin/revocations", params={"tenant": TENANT})["items"]
    assert {i["jti"] for i in listed} >= {root["jti"], child["jti"]}
    assert all(i["tenant"] == TENANT for i in listed)


def test_key_rotation_reaches_the_filter(system: tuple[Build, ControlPlane, Envoy]) -> None:
    build, control_plane, envoy = system
    before = control_plane.mint("agent-3", TENANT, tools=TOOLS)
    rotated = control_plane.ok("POST", "/v1/admin/keys/rotate")
    wait_for(lambda: in_sync(control_plane, build.subscriptions()), "the new key to reach every filter")
    after = control_plane.mint("agent-3", TENANT, tools=TOOLS)
    assert kid_of(after["token"]) == rotated["kid"] != kid_of(before["token"])
    assert "result" in call(envoy, after["token"]), "tokens of the new key verify"
    assert "result" in call(envoy, before["token"]), "tokens of the previous key verify until it is retired"
    control_plane.request("DELETE", f"/v1/admin/keys/{kid_of(before['token'])}").raise_for_status()
    wait_for(lambda: in_sync(control_plane, build.subscriptions()), "the retirement to reach every filter")
    refused = call_refused(envoy, before["token"])
    assert code(refused) == -32010 and "unknown key" in refused["error"]["data"]["reason"], refused
    assert "result" in call(envoy, after["token"])


def test_every_decision_reaches_the_hash_chain(system: tuple[Build, ControlPlane, Envoy]) -> None:
    build, control_plane, envoy = system
    token = control_plane.mint("agent-audit", TENANT, tools=TOOLS)["token"]
    answers = [call(envoy, token, tool) for tool in ("echo", "get-env", "get-sum")]
    assert [code(a) for a in answers] == [None, -32012, None]
    events = wait_for(
        lambda: (lambda e: e if len(e) == 3 else None)(
            [e for e in control_plane.audit(TENANT, subject="agent-audit") if e["event"] == "intentgate.tool_call"]
        ),
        "three tool-call events in the chain",
    )
    assert sorted(e["decision"] for e in events) == ["allow", "allow", "deny"]
    assert all(e["upstream_status"] == 200 for e in events if e["decision"] == "allow")
    assert control_plane.verify(TENANT)["verified"] is True


def test_max_calls_is_exact_across_two_envoys(
    build: Build, everything: EverythingServer, tmp_path: Path
) -> None:
    with ControlPlane(tmp_path / "cp", f"sqlite://{tmp_path}/cp.db?mode=rwc").start() as control_plane:
        control_plane.promote(TENANT, DEMO_POLICY.read_text())
        with gateway_envoy(build, everything, control_plane, tmp_path / "a") as a, gateway_envoy(
            build, everything, control_plane, tmp_path / "b"
        ) as b:
            wait_for(lambda: in_sync(control_plane, 2 * build.subscriptions()), "both Envoys to sync")
            token = control_plane.mint("agent-budget", TENANT, tools=TOOLS, max_calls=100)["token"]
            sessions = {envoy.mcp_url: RawMcp(envoy.mcp_url, token=token).initialize() for envoy in (a, b)}

            def one(i: int) -> str:
                envoy = (a, b)[i % 2]
                answer = call(envoy, token, session=sessions[envoy.mcp_url])
                return "allowed" if "result" in answer else str(code(answer))

            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
                outcomes = list(pool.map(one, range(150)))
            assert outcomes.count("allowed") == 100, outcomes
            assert outcomes.count("-32013") == 50, outcomes


def test_audit_events_made_while_the_control_plane_is_down_arrive_once(
    build: Build, everything: EverythingServer, tmp_path: Path
) -> None:
    control_plane = ControlPlane(tmp_path / "cp", f"sqlite://{tmp_path}/cp.db?mode=rwc").start()
    try:
        control_plane.promote(TENANT, DEMO_POLICY.read_text())
        with gateway_envoy(build, everything, control_plane, tmp_path / "envoy") as envoy:
            wait_for(lambda: in_sync(control_plane, build.subscriptions()), "the filters to sync")
            token = control_plane.mint("agent-fault", TENANT, tools=TOOLS)["token"]
            control_plane.stop()
            calls = 25
            answers = [call(envoy, token) for _ in range(calls)]
            assert all("result" in a for a in answers), "the last good state keeps serving"
            time.sleep(1)  # several ticks with the control plane away: deliveries fail and requeue
            control_plane.start()
            events = wait_for(
                lambda: (lambda e: e if len(e) >= calls else None)(
                    [e for e in control_plane.audit(TENANT, subject="agent-fault") if e["event"] == "intentgate.tool_call"]
                ),
                f"{calls} buffered events",
                timeout=30,
            )
            time.sleep(1)  # anything resent would land by now
            events = [e for e in control_plane.audit(TENANT, subject="agent-fault") if e["event"] == "intentgate.tool_call"]
            assert len(events) == calls, f"{len(events)} events for {calls} calls"
            assert len({e["id"] for e in events}) == calls, "no event written twice"
            assert control_plane.verify(TENANT)["verified"] is True
    finally:
        control_plane.stop()


def test_audit_buffer_overflow_is_counted_in_envoy_and_in_integrations(
    build: Build, everything: EverythingServer, tmp_path: Path
) -> None:
    buffer = 5
    control_plane = ControlPlane(tmp_path / "cp", f"sqlite://{tmp_path}/cp.db?mode=rwc").start()
    try:
        control_plane.promote(TENANT, DEMO_POLICY.read_text())
        with gateway_envoy(build, everything, control_plane, tmp_path / "envoy", audit_buffer_events=buffer) as envoy:
            wait_for(lambda: in_sync(control_plane, build.subscriptions()), "the filters to sync")
            token = control_plane.mint("agent-overflow", TENANT, tools=TOOLS)["token"]
            control_plane.stop()
            calls = 12
            assert all("result" in call(envoy, token) for _ in range(calls))
            # Each call is audited twice (initialize, tools/call); only `buffer` events fit in each
            # buffer (each worker's VM, or the native module's process). The count reaches Envoy's stats
            # on the tick.
            dropped_in_envoy = envoy.wait_for_stat(
                build.stat("intentgate.audit.dropped"), lambda n: n >= 2 * calls - buffer * build.audit_buffers()
            )
            time.sleep(0.5)  # every runtime's tick has counted its drops
            dropped_in_envoy = envoy.stat(build.stat("intentgate.audit.dropped"))
            control_plane.start()

            def ingest() -> dict[str, Any] | None:
                entry = next(i for i in control_plane.ok("GET", "/v1/admin/integrations") if i["name"] == "filters")
                return entry if entry["events_dropped"] >= dropped_in_envoy else None

            entry = wait_for(ingest, "the dropped count to reach the control plane", timeout=30)
            assert entry["events_dropped"] == dropped_in_envoy, entry
            assert f"dropped {dropped_in_envoy} audit events" in entry["last_error"], entry
            assert sum(f["events_dropped"] for f in control_plane.filters()["filters"]) == dropped_in_envoy
            # Every event the filter kept arrives: the buffer's worth, plus any batch that was in flight
            # when the buffer filled (a failed batch goes back past the capacity rather than be lost).
            kept = envoy.stat(build.stat("intentgate.audit.events"))
            assert kept >= buffer, kept

            def from_the_filter() -> list[dict[str, Any]]:
                events = control_plane.audit(TENANT, subject="agent-overflow")
                return [e for e in events if e["event"] in ("intentgate.tool_call", "intentgate.request")]

            arrived = wait_for(lambda: (lambda e: e if len(e) >= kept else None)(from_the_filter()), f"{kept} kept events")
            time.sleep(0.5)  # anything resent would land by now
            arrived = from_the_filter()
            assert len(arrived) == kept, f"{len(arrived)} events arrived, {kept} kept"
            assert control_plane.verify(TENANT)["verified"] is True
    finally:
        control_plane.stop()


def test_a_change_through_one_replica_reaches_the_filters_of_another(
    build: Build, everything: EverythingServer, tmp_path: Path
) -> None:
    cluster = Cluster()
    try:
        a = ControlPlane(tmp_path / "cp-a", cluster.url)
        b = ControlPlane(tmp_path / "cp-b", cluster.url, master_key=a.master_key)
        with a.start(), b.start():
            a.promote(TENANT, DEMO_POLICY.read_text())
            with gateway_envoy(build, everything, b, tmp_path / "envoy-b") as envoy_b:
                wait_for(lambda: in_sync(b, build.subscriptions()), "the Envoy of replica B to sync")
                token = a.mint("agent-replica", TENANT, tools=TOOLS)["token"]
                assert "result" in call(envoy_b, token)
                a.promote(TENANT, DENY_ALL, name="maintenance")
                wait_for(lambda: code(call(envoy_b, token)) == -32012, "replica B's Envoy to enforce A's promotion", timeout=10)
    finally:
        cluster.stop()


def test_with_the_poll_off_a_revocation_through_one_replica_is_refused_by_another_once_acknowledged(
    build: Build, everything: EverythingServer, tmp_path: Path
) -> None:
    """Replica B learns of A's revocation only by notification, pushes it, and its filters apply it as it
    arrives: once every filter has acknowledged the version, the very next call is refused. The filters tick
    once a second, so a filter that waited for its tick would acknowledge late, never early."""
    cluster = Cluster()
    no_poll = {"INTENTGATE_SYNC_POLL_MS": "0"}
    try:
        a = ControlPlane(tmp_path / "cp-a", cluster.url, extra_env=no_poll)
        b = ControlPlane(tmp_path / "cp-b", cluster.url, master_key=a.master_key, extra_env=no_poll)
        with a.start(), b.start():
            a.promote(TENANT, DEMO_POLICY.read_text())
            with gateway_envoy(build, everything, b, tmp_path / "envoy-b", tick_ms=1000) as envoy_b:
                wait_for(lambda: in_sync(b, build.subscriptions()), "the Envoy of replica B to sync")
                minted = a.mint("agent-notified", TENANT, tools=TOOLS)
                assert "result" in call(envoy_b, minted["token"])
                a.revoke(minted["jti"])
                version = a.filters()["state_version"]
                wait_for(
                    lambda: sum(1 for f in b.filters()["filters"] if f["connected"] and f["acked_version"] >= version)
                    >= build.subscriptions(),
                    "every filter of replica B to acknowledge the revocation",
                    timeout=10,
                )
                assert code(call_refused(envoy_b, minted["token"])) == -32010
    finally:
        cluster.stop()
