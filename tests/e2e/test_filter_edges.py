"""The filter at its edges: an external intent extractor reached through an Envoy cluster (answers cached,
failures closed), an upstream that fails (-32603), what the upstream receives (no credentials), and audit
lines in an Envoy that logs only warnings."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from .envoy import Envoy, EnvoyConfig, start_envoy, static_cluster
from .gateway import DEMO_POLICY, Build, Issuer, plugin_config, tenant_config
from .http_peers import Extractor, serve
from .peers import EverythingServer
from .rpc import RawMcp, tool_call

TENANT = "acme-corp"


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer.generate()


def filter_for(build: Build, issuer: Issuer, **extra: object) -> dict[str, object]:
    return build.filter(plugin_config([issuer.public_key], {TENANT: tenant_config(DEMO_POLICY.read_text())}, **extra))


class ExtractorGateway:
    def __init__(self, envoy: Envoy, extractor: Extractor, requests: list[object], token: str) -> None:
        self.envoy, self.extractor, self.requests, self.token = envoy, extractor, requests, token

    def call(self, prompt: str, tool: str = "echo", *, calls: int = 1) -> dict[str, object]:
        """``calls`` identical calls on one connection (so one Envoy worker); the last answer."""
        with RawMcp(self.envoy.mcp_url, token=self.token, prompt=prompt) as raw:
            session = raw.initialize()
            for _ in range(calls):
                answer = raw.post(tool_call(tool, {"message": "m", "a": 1, "b": 2}), session_id=session).message()
            return answer


@pytest.fixture(scope="module")
def extractor_gateway(
    build: Build, everything: EverythingServer, issuer: Issuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExtractorGateway]:
    extractor = Extractor()
    with serve(extractor) as server:
        config = EnvoyConfig(
            upstream_port=everything.port,
            http_filters=[
                filter_for(build, issuer, intent_extractor={"cluster": "extractor", "timeout_ms": 500})
            ],
            extra_clusters=[static_cluster("extractor", "127.0.0.1", server.port)],
        )
        with start_envoy(config, tmp_path_factory.mktemp(f"extractor-{build}")) as envoy:
            token = issuer.token("agent-x", TENANT, tools=["echo", "get-sum", "get-env"])
            yield ExtractorGateway(envoy, extractor, server.requests, token)


def test_external_extractor_intent_is_enforced(extractor_gateway: ExtractorGateway) -> None:
    gw = extractor_gateway
    gw.extractor.mode = "ok"
    assert "result" in gw.call("say hello")
    denied = gw.call("say hello quietly")
    assert denied["error"]["code"] == -32011, denied
    assert "forbidden" in denied["error"]["data"]["reason"]
    outside = gw.call("hello", tool="get-env")
    assert outside["error"]["code"] == -32011, outside


def test_external_extractor_receives_the_contract_and_answers_are_cached(extractor_gateway: ExtractorGateway) -> None:
    gw = extractor_gateway
    gw.extractor.mode = "ok"
    prompt = "a prompt asked twice"
    before = len(gw.requests)
    # The cache is per worker VM (wasm) or per process (native): calls on one connection stay on one worker.
    assert "result" in gw.call(prompt, calls=3)
    mine = [r for r in gw.requests[before:] if json.loads(r[2])["prompt"] == prompt]
    assert len(mine) == 1, "repeated identical prompts must be answered from the cache"
    path, headers, body = mine[0]
    assert path == "/v1/extract"
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"prompt": prompt, "agent_id": "agent-x"}


@pytest.mark.parametrize(("mode", "reason"), [("fail", "HTTP 503"), ("slow", "timed out"), ("garbage", "malformed")])
def test_extractor_failure_fails_closed(extractor_gateway: ExtractorGateway, mode: str, reason: str) -> None:
    gw = extractor_gateway
    gw.extractor.mode = mode
    try:
        denied = gw.call(f"fresh prompt for {mode}")
    finally:
        gw.extractor.mode = "ok"
    assert denied["error"]["code"] == -32011, denied
    assert reason in denied["error"]["data"]["reason"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_upstream_answers_32603(build: Build, issuer: Issuer, tmp_path: Path) -> None:
    config = EnvoyConfig(upstream_port=closed_port(), http_filters=[filter_for(build, issuer)])
    with start_envoy(config, tmp_path) as envoy, RawMcp(envoy.mcp_url, token=issuer.token("a", TENANT, tools=["echo"])) as raw:
        answer = raw.post(tool_call("echo", {"message": "x"}, id="req-1"))
    assert answer.status == 200, answer.describe()
    message = answer.message()
    assert message["id"] == "req-1"
    assert message["error"]["code"] == -32603
    assert message["error"]["data"]["upstream_status"] == 503


def test_upstream_5xx_answers_32603_and_4xx_passes_through(build: Build, issuer: Issuer, tmp_path: Path) -> None:
    statuses = iter([500, 404])

    def upstream(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        return next(statuses), {"content-type": "text/plain"}, b"upstream says no"

    with serve(upstream) as server:
        config = EnvoyConfig(upstream_port=server.port, http_filters=[filter_for(build, issuer)])
        with start_envoy(config, tmp_path) as envoy, RawMcp(envoy.mcp_url, token=issuer.token("a", TENANT, tools=["echo"])) as raw:
            failed = raw.post(tool_call("echo", {"message": "x"}, id=9))
            missing = raw.post(tool_call("echo", {"message": "x"}, id=10))
    assert failed.status == 200 and failed.message()["error"]["code"] == -32603, failed.describe()
    assert failed.message()["error"]["data"] == {"upstream_status": 500, "detail": "upstream answered HTTP 500"}
    assert missing.status == 404 and missing.body == b"upstream says no"


def empty_result(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    """An upstream answering every JSON-RPC call with an empty tool result."""
    answer = {"jsonrpc": "2.0", "id": json.loads(body)["id"], "result": {"content": []}}
    return 200, {"content-type": "application/json"}, json.dumps(answer).encode()


def test_upstream_never_sees_the_capability_token_or_prompt(build: Build, issuer: Issuer, tmp_path: Path) -> None:
    with serve(empty_result) as server:
        config = EnvoyConfig(upstream_port=server.port, http_filters=[filter_for(build, issuer)])
        token = issuer.token("a", TENANT, tools=["echo"])
        with start_envoy(config, tmp_path) as envoy, RawMcp(envoy.mcp_url, token=token, prompt="say hi") as raw:
            answer = raw.post(tool_call("echo", {"message": "x"}), headers={"X-IntentGate-Tenant": TENANT})
    assert "result" in answer.message(), answer.describe()
    (_, headers, _), = server.requests
    for name in ("authorization", "x-intent-prompt", "x-intentgate-tenant"):
        assert name not in headers, f"{name} reached the upstream"
    assert token not in json.dumps(headers)


def test_audit_lines_are_kept_when_envoy_logs_only_warnings(build: Build, issuer: Issuer, tmp_path: Path) -> None:
    """Without a control plane the audit trail is Envoy's log; `--log-level warning` must not drop it."""
    with serve(empty_result) as server:
        config = EnvoyConfig(upstream_port=server.port, http_filters=[filter_for(build, issuer)])
        token = issuer.token("quiet-agent", TENANT, tools=["echo", "get-env"])
        with start_envoy(config, tmp_path, log_level="warning") as envoy:
            with RawMcp(envoy.mcp_url, token=token) as raw:
                allowed = raw.post(tool_call("echo", {"message": "x"}))
                denied = raw.post(tool_call("get-env", {}))
            mine = envoy.wait_for_log_objects(lambda e: e.get("agent_id") == "quiet-agent", count=2)
            # The lines of one tick are one write: the first carries Envoy's prefix and level.
            records = [line for line in envoy.log_text().splitlines() if build.log_marker in line and "intentgate-audit " in line]
    assert "result" in allowed.message() and denied.message()["error"]["code"] == -32012
    assert [(e["tool"], e["decision"]) for e in mine] == [("echo", "allow"), ("get-env", "deny")], mine
    assert records and all("[warning]" in line for line in records), records
