"""Human approvals and step-up through real Envoy and the real control plane (issue 6): an escalated
call waits for a human (held, or answered -32019 and retried with the approval id), an approval is
used once and only for the call it was made for, the whole pipeline runs again on approval, and the
notification webhook receives signed events, retried after a 503."""

from __future__ import annotations

import concurrent.futures
import hashlib
import hmac
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from .control_plane import ControlPlane
from .envoy import Envoy
from .http_peers import serve
from .mcp_client import MCPError, open_mcp_session
from .peers import EverythingServer
from .rpc import RawMcp, tool_call
from .gateway import Build
from .test_control_plane import code, gateway_envoy, in_sync, wait_for

TENANT = "acme-corp"
OTHER_TENANT_TOKEN = "globex-admin-token-0123456789"
WEBHOOK_SECRET = "notify-secret-0123456789"
POLICY = """package intentgate.policy
import rego.v1
default decision := {"allow": false, "reason": "not allowed", "rule": "default"}
decision := {"allow": true, "rule": "echo"} if { input.tool == "echo" }
decision := {"allow": true, "rule": "small_sum"} if { input.tool == "get-sum"; input.args.a <= 100 }
decision := {"allow": false, "escalate": true, "reason": "large sums need a human", "rule": "large_sum"} if {
    input.tool == "get-sum"
    input.args.a > 100
}
decision := {"allow": false, "reason": "fresh second factor needed", "rule": "step_up", "requires_step_up": true} if {
    input.tool == "get-env"
    not input.capability.step_up_at
}
decision := {"allow": true, "rule": "env_after_step_up"} if { input.tool == "get-env"; input.capability.step_up_at }
"""


class Receiver:
    """The notification webhook's receiving end: verifies every signature, fails the first N posts."""

    def __init__(self) -> None:
        self.failures_left = 0
        self.received: list[dict[str, Any]] = []
        self.statuses: list[int] = []

    def __call__(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        timestamp = headers.get("x-intentgate-timestamp", "")
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, headers.get("x-intentgate-signature", "")):
            self.statuses.append(401)
            return 401, {}, b"bad signature"
        if self.failures_left > 0:
            self.failures_left -= 1
            self.statuses.append(503)
            return 503, {}, b"busy"
        self.statuses.append(200)
        self.received.append(json.loads(body))
        return 200, {"content-type": "application/json"}, b"{}"

    def events(self) -> list[dict[str, Any]]:
        out = []
        for batch in self.received:
            out += batch.get("events", batch if isinstance(batch, list) else [])
        return out


class System:
    def __init__(self, build: Build, control_plane: ControlPlane, envoy: Envoy, receiver: Receiver) -> None:
        self.build, self.cp, self.envoy, self.receiver = build, control_plane, envoy, receiver

    def token(self, subject: str, **fields: Any) -> dict[str, Any]:
        return self.cp.mint(subject, TENANT, tools=["echo", "get-sum", "get-env"], **fields)

    def settings(self, **settings: Any) -> None:
        self.cp.settings(TENANT, **settings)
        wait_for(lambda: in_sync(self.cp, self.build.subscriptions()), "the settings to reach every filter")

    def call(self, token: str, a: int, *, approval: str | None = None, tool: str = "get-sum") -> dict[str, Any]:
        headers = {"X-IntentGate-Approval-Id": approval} if approval else None
        with RawMcp(self.envoy.mcp_url, token=token, timeout=120) as raw:
            session = raw.initialize()
            return raw.post(tool_call(tool, {"a": a, "b": 1}), session_id=session, headers=headers).message()

    def pending_for(self, agent: str) -> dict[str, Any]:
        return wait_for(
            lambda: next((p for p in self.cp.pending(TENANT) if p["agent_id"] == agent), None),
            f"an approval for {agent}",
        )

    def approvals(self, status: str) -> list[dict[str, Any]]:
        return self.cp.ok("GET", "/v1/admin/approvals", params={"tenant": TENANT, "status": status})["items"]

    def ending_event(self, approval_id: str) -> dict[str, Any] | None:
        """The deny that says how the call of `approval_id` ended."""
        return next(
            (e for e in self.cp.audit(TENANT) if e["pending_id"] == approval_id and e["decision"] == "deny"),
            None,
        )

    def sums_reaching_upstream(self) -> int:
        return self.envoy.upstream_stat("upstream_rq_total")


@pytest.fixture(scope="module")
def system(build: Build, everything: EverythingServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    workdir = tmp_path_factory.mktemp(f"approvals-{build}")
    receiver = Receiver()
    with serve(receiver) as hook:
        control_plane = ControlPlane(
            workdir / "cp",
            f"sqlite://{workdir}/cp.db?mode=rwc",
            extra_env={
                "INTENTGATE_TENANT_ADMIN_TOKENS": f"globex:{OTHER_TENANT_TOKEN}",
                "INTENTGATE_WEBHOOK_URL": f"http://127.0.0.1:{hook.port}/hooks/intentgate",
                "INTENTGATE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "INTENTGATE_WEBHOOK_SELECT": "findings",
                "INTENTGATE_DELIVERY_POLL_MS": "100",
                "INTENTGATE_DELIVERY_MIN_BACKOFF_MS": "100",
                "INTENTGATE_DELIVERY_MAX_BACKOFF_MS": "500",
            },
        ).start()
        try:
            control_plane.promote(TENANT, POLICY)
            with gateway_envoy(build, everything, control_plane, workdir / "envoy") as envoy:
                wait_for(lambda: in_sync(control_plane, build.subscriptions()), "every filter to sync")
                yield System(build, control_plane, envoy, receiver)
        finally:
            control_plane.stop()


def held(system: System, token: str, a: int) -> concurrent.futures.Future[dict[str, Any]]:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    return pool.submit(system.call, token, a)


def test_escalate_then_approve_forwards_the_held_call_once(system: System) -> None:
    system.settings(approval_mode="sync", approval_timeout_secs=60)
    token = system.token("agent-approve")
    waiting = held(system, token["token"], 500)
    approval = system.pending_for("agent-approve")
    assert approval["tool"] == "get-sum" and approval["escalating_rule"] == "large_sum"
    assert approval["arguments"] == {"a": 500, "b": 1}
    before = system.sums_reaching_upstream()
    assert system.cp.decide(approval["id"], "approve").status_code == 204
    answer = waiting.result(timeout=30)
    assert "result" in answer, answer
    assert "501" in json.dumps(answer["result"])
    assert system.sums_reaching_upstream() == before + 1, "the approved call reached the tool once"
    replay = system.call(token["token"], 500, approval=approval["id"])
    assert code(replay) == -32012 and "already used" in replay["error"]["data"]["reason"], replay
    events = [e for e in system.cp.audit(TENANT, subject="agent-approve") if e["tool"] == "get-sum"]
    escalate = next(e for e in events if e["decision"] == "escalate")
    assert escalate["pending_id"] == approval["id"] and escalate["rule"] == "large_sum"
    assert any(e["decision"] == "approve" and e["decided_by"] == "superadmin as joe@example.com" for e in system.cp.audit(TENANT))


LEASE_SECONDS = 10  # control-plane/src/sync/leases.rs TTL_MS


def test_a_held_call_with_a_budget_is_forwarded_when_approved_after_its_lease_ended(system: System) -> None:
    """The lease taken before the call escalated has ended by the time the human decides: the approved
    call must take a new one, not fail the budget check closed."""
    system.settings(approval_mode="sync", approval_timeout_secs=60)
    token = system.token("agent-budgeted", max_calls=5)
    waiting = held(system, token["token"], 600)
    approval = system.pending_for("agent-budgeted")
    time.sleep(LEASE_SECONDS + 3)
    before = system.sums_reaching_upstream()
    assert system.cp.decide(approval["id"], "approve").status_code == 204
    answer = waiting.result(timeout=30)
    assert "result" in answer, answer
    assert "601" in json.dumps(answer["result"])
    assert system.sums_reaching_upstream() == before + 1


def test_escalate_then_reject_denies(system: System) -> None:
    system.settings(approval_mode="sync", approval_timeout_secs=60)
    token = system.token("agent-reject")
    waiting = held(system, token["token"], 700)
    approval = system.pending_for("agent-reject")
    assert system.cp.decide(approval["id"], "reject", reason="not this month").status_code == 204
    answer = waiting.result(timeout=30)
    assert code(answer) == -32012, answer
    assert "rejected by joe@example.com: not this month" in answer["error"]["data"]["reason"]
    assert system.cp.decide(approval["id"], "approve").status_code == 409, "deciding twice is 409"


@pytest.mark.anyio
async def test_an_undecided_held_call_times_out_and_its_approval_ends_with_it(system: System) -> None:
    system.settings(approval_mode="sync", approval_timeout_secs=2)
    token = system.token("agent-timeout")["token"]
    started = time.monotonic()
    async with open_mcp_session(system.envoy.mcp_url, token=token, timeout=60) as mcp:
        with pytest.raises(MCPError) as timed_out:
            await mcp.call_tool("get-sum", {"a": 900, "b": 1})
    answered = time.monotonic()
    assert timed_out.value.code == -32012 and "not decided within 2 s" in timed_out.value.data["reason"]
    assert 1.5 < answered - started < 15
    approval_id = timed_out.value.data["reason"].split()[1]
    wait_for(lambda: approval_id not in {p["id"] for p in system.cp.pending(TENANT)}, "the approval to leave", timeout=1)
    ended = wait_for(lambda: [a for a in system.approvals("timed_out") if a["id"] == approval_id], "a timed_out approval")
    assert ended[0]["end_reason"].startswith(f"approval {approval_id} was not decided within 2 s")
    event = wait_for(lambda: system.ending_event(approval_id), "the timeout's audit event")
    assert event["agent_id"] == "agent-timeout" and event["tool"] == "get-sum"
    assert "not decided within 2 s" in event["reason"] and event["error_code"] == -32012
    refused = system.cp.decide(approval_id, "approve")
    assert refused.status_code == 409 and "timed out" in refused.json()["error"], refused.text


@pytest.mark.anyio
async def test_a_client_leaving_a_held_call_abandons_its_approval_at_once(system: System) -> None:
    system.settings(approval_mode="sync", approval_timeout_secs=300)
    token = system.token("agent-leaving")["token"]
    async with open_mcp_session(system.envoy.mcp_url, token=token, timeout=300) as mcp:
        async with anyio.create_task_group() as calls:
            calls.start_soon(mcp.call_tool, "get-sum", {"a": 950, "b": 1})
            approval = await anyio.to_thread.run_sync(system.pending_for, "agent-leaving")
            calls.cancel_scope.cancel()
    left = time.monotonic()
    wait_for(lambda: approval["id"] not in {p["id"] for p in system.cp.pending(TENANT)}, "the approval to leave", timeout=1)
    assert time.monotonic() - left < 1.5
    ended = wait_for(lambda: [a for a in system.approvals("abandoned") if a["id"] == approval["id"]], "an abandoned approval")
    assert "the client went away" in ended[0]["end_reason"]
    event = wait_for(lambda: system.ending_event(approval["id"]), "the abandonment's audit event")
    assert event["agent_id"] == "agent-leaving" and event["tool"] == "get-sum" and event["error_code"] == 0
    assert "abandoned: the client went away" in event["reason"]
    refused = system.cp.decide(approval["id"], "approve")
    assert refused.status_code == 409 and "abandoned" in refused.json()["error"], refused.text


def test_asynchronous_mode_answers_32019_and_the_retry_goes_through_once(system: System) -> None:
    system.settings(approval_mode="async", approval_timeout_secs=60)
    token = system.token("agent-async")["token"]
    answer = system.call(token, 300)
    assert code(answer) == -32019, answer
    data = answer["error"]["data"]
    assert data["status"] == "pending" and data["resume_header"] == "X-IntentGate-Approval-Id"
    pending_id = data["pending_id"]
    early = system.call(token, 300, approval=pending_id)
    assert code(early) == -32012 and "pending" in early["error"]["data"]["reason"], early
    assert system.cp.decide(pending_id, "approve").status_code == 204
    retried = system.call(token, 300, approval=pending_id)
    assert "result" in retried, retried
    again = system.call(token, 300, approval=pending_id)
    assert code(again) == -32012 and "already used" in again["error"]["data"]["reason"], again


def test_a_held_call_whose_envoy_vanished_is_ended_by_the_control_plane(
    build: Build, everything: EverythingServer, tmp_path: Path
) -> None:
    """The proxy holding the call is killed: no filter can tell the ending, so the control plane ends
    the hold once nothing has waited for it for INTENTGATE_APPROVAL_GRACE_MS."""
    control_plane = ControlPlane(
        tmp_path / "cp", f"sqlite://{tmp_path}/cp.db?mode=rwc", extra_env={"INTENTGATE_APPROVAL_GRACE_MS": "1000"}
    ).start()
    try:
        control_plane.promote(TENANT, POLICY)
        control_plane.settings(TENANT, approval_mode="sync", approval_timeout_secs=300)
        with gateway_envoy(build, everything, control_plane, tmp_path / "envoy") as envoy:
            wait_for(lambda: in_sync(control_plane, build.subscriptions()), "every filter VM to sync")
            system = System(build, control_plane, envoy, Receiver())
            waiting = held(system, system.token("agent-orphaned")["token"], 990)
            approval = system.pending_for("agent-orphaned")
            os.kill(envoy.pid, signal.SIGKILL)
            killed = time.monotonic()
            ended = wait_for(
                lambda: [a for a in system.approvals("abandoned") if a["id"] == approval["id"]],
                "the control plane to end the orphaned hold",
                timeout=15,
            )
            assert time.monotonic() - killed < 10, "ended after the grace, not at the 300 s timeout"
            assert "the filter holding the call stopped waiting" in ended[0]["end_reason"]
            assert approval["id"] not in {p["id"] for p in control_plane.pending(TENANT)}
            event = wait_for(lambda: system.ending_event(approval["id"]), "the ending's audit event")
            assert event["decided_by"] == "control-plane" and event["agent_id"] == "agent-orphaned"
            assert control_plane.decide(approval["id"], "approve").status_code == 409
            assert waiting.exception(timeout=30) is not None, "the client lost its connection with the proxy"
    finally:
        control_plane.stop()


def test_a_parked_approval_expires_after_the_tenants_lifetime(system: System) -> None:
    system.settings(approval_mode="async", approval_timeout_secs=60, approval_lifetime_secs=1)
    token = system.token("agent-expiring")["token"]
    answer = system.call(token, 350)
    assert code(answer) == -32019, answer
    pending_id = answer["error"]["data"]["pending_id"]
    expired = wait_for(lambda: [a for a in system.approvals("expired") if a["id"] == pending_id], "the approval to expire", timeout=5)
    assert expired[0]["held"] is False and "expired undecided after 1 s" in expired[0]["end_reason"]
    assert pending_id not in {p["id"] for p in system.cp.pending(TENANT)}
    event = wait_for(lambda: system.ending_event(pending_id), "the expiry's audit event")
    assert event["agent_id"] == "agent-expiring" and event["decided_by"] == "control-plane"
    assert system.cp.decide(pending_id, "approve").status_code == 409
    retried = system.call(token, 350, approval=pending_id)
    assert code(retried) == -32012 and "expired" in retried["error"]["data"]["reason"], retried


def test_an_approval_is_bound_to_its_arguments_agent_and_tenant(system: System) -> None:
    system.settings(approval_mode="async", approval_timeout_secs=60)
    token = system.token("agent-bound")["token"]
    pending_id = system.call(token, 400)["error"]["data"]["pending_id"]
    assert system.cp.decide(pending_id, "approve").status_code == 204
    other_args = system.call(token, 401, approval=pending_id)
    assert code(other_args) == -32012 and "other arguments" in other_args["error"]["data"]["reason"], other_args
    other_agent = system.call(system.token("agent-intruder")["token"], 400, approval=pending_id)
    assert code(other_agent) == -32012 and "another agent" in other_agent["error"]["data"]["reason"], other_agent
    assert "result" in system.call(token, 400, approval=pending_id), "the call it was made for still goes through"


def test_a_token_revoked_before_approval_is_still_denied(system: System) -> None:
    system.settings(approval_mode="sync", approval_timeout_secs=60)
    minted = system.token("agent-revoked")
    waiting = held(system, minted["token"], 800)
    approval = system.pending_for("agent-revoked")
    system.cp.revoke(minted["jti"])
    wait_for(lambda: in_sync(system.cp, system.build.subscriptions()), "the revocation to reach every filter")
    assert system.cp.decide(approval["id"], "approve").status_code == 204
    answer = waiting.result(timeout=30)
    assert code(answer) == -32010 and "revoked" in answer["error"]["data"]["reason"], answer


def test_another_tenants_admin_cannot_decide(system: System) -> None:
    system.settings(approval_mode="async", approval_timeout_secs=60)
    pending_id = system.call(system.token("agent-cross")["token"], 600)["error"]["data"]["pending_id"]
    assert system.cp.decide(pending_id, "approve", token=OTHER_TENANT_TOKEN).status_code == 404
    assert system.cp.request("GET", "/v1/admin/approvals", token=OTHER_TENANT_TOKEN).json()["items"] == []


def test_step_up_is_required_and_carried(system: System) -> None:
    plain = system.token("agent-stepup")["token"]
    denied = system.call(plain, 1, tool="get-env")
    assert code(denied) == -32012 and denied["error"]["data"]["requires_step_up"] is True, denied
    stepped = system.token("agent-stepup", step_up=True)["token"]
    assert "result" in system.call(stepped, 1, tool="get-env")
    event = wait_for(
        lambda: next((e for e in system.cp.audit(TENANT, subject="agent-stepup") if e["requires_step_up"]), None),
        "the step-up denial in the audit chain",
    )
    assert event["rule"] == "step_up"


def test_notifications_are_signed_and_retried_after_a_503(system: System) -> None:
    system.settings(approval_mode="async", approval_timeout_secs=60)
    system.receiver.failures_left = 1
    pending_id = system.call(system.token("agent-notify")["token"], 1000)["error"]["data"]["pending_id"]
    event = wait_for(
        lambda: next((e for e in system.receiver.events() if e.get("pending_id") == pending_id), None),
        "the escalate notification",
    )
    assert event["decision"] == "escalate" and event["agent_id"] == "agent-notify"
    assert 503 in system.receiver.statuses and 401 not in system.receiver.statuses
    webhook = next(i for i in system.cp.ok("GET", "/v1/admin/integrations") if i["name"] == "webhook")
    assert webhook["configured"] is True and webhook["events_flushed"] >= 1
