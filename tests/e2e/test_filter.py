"""The IntentGate filter in real Envoy 1.40, in front of the real server-everything, driven by the real
Python MCP client and raw JSON-RPC: every check answers with its code, and nothing denied reaches the
upstream (issue 3)."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .envoy import Envoy, EnvoyConfig, start_envoy
from .gateway import DEMO_POLICY, Build, Issuer, plugin_config, tenant_config
from .mcp_client import MCPError, open_mcp_session, text_of
from .peers import EverythingServer
from .rpc import RawMcp, padded_tool_call, tool_call

TENANT = "acme-corp"
TOKEN_TOOLS = ["echo", "get-sum", "get-env", "get-tiny-image"]
INTENT_RULES = [
    {"id": "arithmetic", "keywords": ["sum", "add"], "allow": ["get-sum"], "summary": "add numbers"},
    {"id": "quiet", "keywords": ["quietly"], "forbid": ["echo"]},
]


class Gateway:
    """Envoy with the filter, and the tokens the tests present."""

    def __init__(self, build: Build, envoy: Envoy, issuer: Issuer, tokens: dict[str, str]) -> None:
        self.build = build
        self.envoy = envoy
        self.issuer = issuer
        self.tokens = tokens

    def raw(self, token: str | None = None, **kwargs: Any) -> RawMcp:
        return RawMcp(self.envoy.mcp_url, token=token, **kwargs)

    def upstream_requests(self) -> int:
        return self.envoy.upstream_stat("upstream_rq_total")


@pytest.fixture(scope="module")
def gateway(
    build: Build, everything: EverythingServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    issuer = Issuer.generate()
    forger = Issuer.generate()
    now = int(time.time())
    revoked = issuer.mint("agent-7", TENANT, tools=TOKEN_TOOLS)
    tokens = {
        "good": issuer.token("agent-7", TENANT, tools=TOKEN_TOOLS),
        "budget": issuer.token("agent-7", TENANT, tools=TOKEN_TOOLS, max_calls=3),
        "race": issuer.token("agent-8", TENANT, tools=TOKEN_TOOLS, max_calls=20),
        "forged": forger.token("agent-7", TENANT, tools=TOKEN_TOOLS),
        "expired": issuer.token("agent-7", TENANT, tools=TOKEN_TOOLS, now=now - 7200, ttl=60),
        "revoked": revoked["token"],
        "other_tenant": issuer.token("agent-7", "globex", tools=TOKEN_TOOLS),
    }
    plugin = plugin_config(
        [issuer.public_key],
        {
            TENANT: tenant_config(DEMO_POLICY.read_text(), intent_rules=INTENT_RULES),
            "globex": tenant_config(DEMO_POLICY.read_text()),
        },
        revocations=[revoked["jti"]],
        serve_tenants=[TENANT],
    )
    config = EnvoyConfig(upstream_port=everything.port, http_filters=[build.filter(plugin)])
    with start_envoy(config, tmp_path_factory.mktemp(f"filter-{build}")) as envoy:
        yield Gateway(build, envoy, issuer, tokens)


def error_of(answer: Any) -> dict[str, Any]:
    message = answer.message()
    assert "error" in message, f"expected a JSON-RPC error: {answer.describe()}"
    return message["error"]


def refused_without_reaching_upstream(
    gw: Gateway, token: str | None, body: Any, status: int = 200, **headers: str
) -> dict[str, Any]:
    """Sends ``body``; asserts `status` (200, or 401 for a missing or refused token) with a JSON-RPC error and
    that the upstream saw nothing."""
    before = gw.upstream_requests()
    with gw.raw(token, headers=headers or None) as raw:
        answer = raw.post(body)
    assert answer.status == status, answer.describe()
    error = error_of(answer)
    time.sleep(0.05)
    assert gw.upstream_requests() == before, "a denied call reached the tool server"
    return error


@pytest.mark.anyio
async def test_real_client_sees_only_its_tools_and_calls_an_allowed_one(gateway: Gateway) -> None:
    async with open_mcp_session(gateway.envoy.mcp_url, token=gateway.tokens["good"]) as mcp:
        names = await mcp.list_tool_names()
        assert set(names) == set(TOKEN_TOOLS), f"tools/list must show exactly the token's tools, got {names}"
        result = await mcp.call_tool("echo", {"message": "through the gateway"})
        assert "through the gateway" in text_of(result)


@pytest.mark.anyio
async def test_real_client_gets_policy_denial_as_32012(gateway: Gateway) -> None:
    async with open_mcp_session(gateway.envoy.mcp_url, token=gateway.tokens["good"]) as mcp:
        with pytest.raises(MCPError) as denied:
            await mcp.call_tool("get-env", {})
        assert denied.value.code == -32012
        assert denied.value.data["rule"] == "no_env"


def test_allowed_call_reaches_the_upstream_on_both_paths(gateway: Gateway) -> None:
    for url in (gateway.envoy.mcp_url, gateway.envoy.tool_call_url):
        with RawMcp(url, token=gateway.tokens["good"]) as raw:
            session = raw.initialize()
            before = gateway.upstream_requests()
            answer = raw.post(tool_call("get-sum", {"a": 2, "b": 3}), session_id=session)
            assert answer.status == 200, answer.describe()
            assert "result" in answer.message(), answer.describe()
            assert "5" in json.dumps(answer.message()["result"])
            assert gateway.upstream_requests() == before + 1


@pytest.mark.parametrize(
    ("token_name", "reason"),
    [
        ("forged", "unknown key"),
        ("expired", "expired"),
        ("revoked", "revoked"),
        ("other_tenant", "not served"),
    ],
)
def test_bad_tokens_are_refused_with_32010(gateway: Gateway, token_name: str, reason: str) -> None:
    error = refused_without_reaching_upstream(
        gateway, gateway.tokens[token_name], tool_call("echo", {"message": "x"}), status=401
    )
    assert error["code"] == -32010
    assert error["data"]["check"] == "capability"
    assert reason in error["data"]["reason"]


def test_tampered_token_is_refused_with_32010(gateway: Gateway) -> None:
    good = gateway.tokens["good"]
    middle = len(good) // 2
    tampered = good[:middle] + ("A" if good[middle] != "A" else "B") + good[middle + 1 :]
    error = refused_without_reaching_upstream(gateway, tampered, tool_call("echo", {"message": "x"}), status=401)
    assert error["code"] == -32010


def test_missing_token_is_refused_with_32010(gateway: Gateway) -> None:
    error = refused_without_reaching_upstream(gateway, None, tool_call("echo", {"message": "x"}), status=401)
    assert error["code"] == -32010
    assert "missing bearer token" in error["data"]["reason"]


def test_tool_outside_the_token_is_refused_with_32010(gateway: Gateway) -> None:
    error = refused_without_reaching_upstream(gateway, gateway.tokens["good"], tool_call("trigger-sampling-request", {}))
    assert error["code"] == -32010
    assert "not allowed by the token" in error["data"]["reason"]


def test_policy_denied_call_is_32012_with_its_rule(gateway: Gateway) -> None:
    error = refused_without_reaching_upstream(gateway, gateway.tokens["good"], tool_call("get-env", {}))
    assert error["code"] == -32012
    assert error["data"] == {"check": "policy", "reason": "environment access is not allowed", "rule": "no_env"}


def test_intent_forbidden_call_is_32011(gateway: Gateway) -> None:
    error = refused_without_reaching_upstream(
        gateway, gateway.tokens["good"], tool_call("echo", {"message": "x"}), **{"X-Intent-Prompt": "quietly do it"}
    )
    assert error["code"] == -32011
    assert "forbidden by the declared intent" in error["data"]["reason"]
    error = refused_without_reaching_upstream(
        gateway, gateway.tokens["good"], tool_call("echo", {"message": "x"}), **{"X-Intent-Prompt": "add 2 and 3"}
    )
    assert error["code"] == -32011
    assert "outside the declared intent" in error["data"]["reason"]


def test_call_within_the_declared_intent_is_allowed(gateway: Gateway) -> None:
    with gateway.raw(gateway.tokens["good"], prompt="please add 2 and 3") as raw:
        session = raw.initialize()
        answer = raw.post(tool_call("get-sum", {"a": 2, "b": 3}), session_id=session)
    assert "result" in answer.message(), answer.describe()


def test_over_budget_call_is_32013_with_limit_and_used(gateway: Gateway) -> None:
    with gateway.raw(gateway.tokens["budget"]) as raw:
        session = raw.initialize()
        for _ in range(3):
            assert "result" in raw.post(tool_call("echo", {"message": "x"}), session_id=session).message()
    error = refused_without_reaching_upstream(gateway, gateway.tokens["budget"], tool_call("echo", {"message": "x"}))
    assert error["code"] == -32013
    assert error["data"]["limit"] == 3
    assert error["data"]["used"] == 3


def test_max_calls_is_exact_across_envoy_workers(gateway: Gateway) -> None:
    with gateway.raw(gateway.tokens["race"]) as raw:
        session = raw.initialize()

    def call(_: int) -> str:
        with gateway.raw(gateway.tokens["race"]) as client:
            answer = client.post(tool_call("echo", {"message": "x"}), session_id=session)
            message = answer.message()
            return "allowed" if "result" in message else str(message["error"]["code"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(call, range(40)))
    assert outcomes.count("allowed") == 20, outcomes
    assert outcomes.count("-32013") == 20, outcomes


def test_get_and_delete_without_a_token_are_401(gateway: Gateway) -> None:
    with gateway.raw(gateway.tokens["good"]) as raw:
        session = raw.initialize()
    before = gateway.upstream_requests()
    with gateway.raw(None) as raw:
        for answer in (raw.get_stream(session), raw.delete(session)):
            assert answer.status == 401, answer.describe()
            assert answer.headers.get("www-authenticate") == "Bearer"
            assert error_of(answer)["code"] == -32010
            assert answer.message()["id"] is None
    assert gateway.upstream_requests() == before


def test_get_and_delete_with_a_valid_token_reach_the_session(gateway: Gateway) -> None:
    with gateway.raw(gateway.tokens["good"]) as raw:
        session = raw.initialize()
        stream = raw.get_stream(session)
        assert stream.status == 200, stream.describe()
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert raw.delete(session).status == 200


def test_batch_mixing_allowed_and_denied_calls(gateway: Gateway) -> None:
    with gateway.raw(gateway.tokens["good"]) as raw:
        session = raw.initialize()
        answer = raw.post(
            [
                tool_call("echo", {"message": "one"}, id=1),
                tool_call("get-env", {}, id=2),
                tool_call("get-sum", {"a": 1, "b": 1}, id=3),
                tool_call("trigger-sampling-request", {}, id=4),
                {"jsonrpc": "2.0", "id": 5, "method": "no/such/method"},
            ],
            session_id=session,
        )
    by_id = answer.by_id()
    assert set(by_id) == {1, 2, 3, 4, 5}, answer.describe()
    assert "result" in by_id[1] and "result" in by_id[3]
    assert by_id[2]["error"]["code"] == -32012
    assert by_id[4]["error"]["code"] == -32010
    assert by_id[5]["error"]["code"] == -32601


def test_2_mib_body_is_answered_by_the_filter_not_by_envoy(gateway: Gateway) -> None:
    before = gateway.upstream_requests()
    with gateway.raw(gateway.tokens["good"]) as raw:
        answer = raw.post(padded_tool_call(2 * 1024 * 1024))
    assert answer.status == 200, answer.describe()
    error = error_of(answer)
    assert error["code"] == -32600
    assert "exceeds the limit of 1048576 bytes" in error["data"]["reason"]
    assert gateway.upstream_requests() == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", -32700),
        (b'{"jsonrpc":"1.0","id":1,"method":"ping"}', -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/destroy"}', -32601),
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}', -32602),
    ],
)
def test_malformed_envelopes_get_their_codes(gateway: Gateway, body: bytes, code: int) -> None:
    assert refused_without_reaching_upstream(gateway, gateway.tokens["good"], body)["code"] == code


def test_every_decision_is_one_audit_event(gateway: Gateway) -> None:
    marker = f"audit-{time.time_ns()}"
    with gateway.raw(gateway.tokens["good"]) as raw:
        session = raw.initialize()
        raw.post(tool_call("echo", {"message": marker}), session_id=session)
        raw.post(tool_call("get-env", {"marker": marker}), session_id=session)
    mine = gateway.envoy.wait_for_log_objects(lambda e: marker in json.dumps(e.get("arg_values")), count=2)
    assert [e["decision"] for e in mine] == ["allow", "deny"], mine
    allowed, denied = mine
    assert allowed["event"] == "intentgate.tool_call" and allowed["schema_version"] == "v4"
    assert allowed["tool"] == "echo" and allowed["upstream_status"] == 200
    assert allowed["tenant"] == TENANT and allowed["agent_id"] == "agent-7"
    assert allowed["session_id"] == session and allowed["remote_ip"] == "127.0.0.1"
    assert denied["check"] == "policy" and denied["rule"] == "no_env" and denied["upstream_status"] == 0
    assert denied["capability_token_id"] == denied["root_capability_token_id"]


def test_stats_count_decisions_and_time_checks(gateway: Gateway) -> None:
    before = gateway.envoy.stats("intentgate")
    refused_without_reaching_upstream(gateway, gateway.tokens["good"], tool_call("get-env", {}))
    with gateway.raw(gateway.tokens["good"]) as raw:
        assert "result" in raw.post(tool_call("echo", {"message": "m"}), session_id=raw.initialize()).message()
    # The filter hands its counts to Envoy on its tick.
    for name in map(gateway.build.stat, ("intentgate.tool_calls.deny.policy", "intentgate.tool_calls.allow")):
        after = gateway.envoy.wait_for_stat(name, lambda n, name=name: n >= before.get(name, 0) + 1)
        assert after == before.get(name, 0) + 1, (name, after)
    histograms = gateway.envoy.admin_get("/stats", filter="intentgate").text
    for name in ("intentgate.verify_us", "intentgate.eval_us", "intentgate.filter_us"):
        assert gateway.build.stat(name) in histograms, name


def test_invalid_plugin_configuration_keeps_envoy_from_starting(
    build: Build, everything: EverythingServer, tmp_path: Path
) -> None:
    from .envoy import validate_config

    key = Issuer.generate().public_key
    policy = DEMO_POLICY.read_text()
    for name, tenant, said in [
        # The filter takes bytecode only: Rego source is refused, with how to compile it.
        ("rego source", {"policy": {"rego": policy}}, "intentgate compile"),
        ("unloadable bytecode", {"policy": {"bytecode": "UkVHTwYAAAA="}}, "bytecode"),
    ]:
        config = EnvoyConfig(upstream_port=everything.port, http_filters=[build.filter(plugin_config([key], {TENANT: tenant}))])
        done = validate_config(config, tmp_path / name.replace(" ", "-"))
        assert done.returncode != 0, f"Envoy accepted a plugin configuration with {name}"
        assert said in done.stdout + done.stderr, name
