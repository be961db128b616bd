"""The two builds side by side: the same plugin configuration in a wasm Envoy and in a native Envoy, in front of
one deterministic tool server, get the same requests one after the other. For every request both give the same
answer, byte for byte: the status, the body, and the headers the filter decides (``content-type``,
``www-authenticate``); Envoy's own ``date`` and ``server`` are not the filter's. Every request also leaves the
same audit events, in the same order, equal in every field but three that no two runs share:

- ``id``: a ULID from the runtime's own randomness;
- ``ts``: the wall-clock time of the decision;
- ``latency_ms``: how long the deciding callback took.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from .envoy import Envoy, EnvoyConfig, start_envoy
from .gateway import BUILDS, DEMO_POLICY, Issuer, plugin_config, tenant_config
from .http_peers import serve
from .rpc import ACCEPT, initialize_request, notification, padded_tool_call, request, tool_call

TENANT = "acme-corp"
SESSION = "differential-session"
TOOLS = [
    {"name": "echo", "inputSchema": {"type": "object"}},
    {"name": "get-sum", "inputSchema": {"type": "object"}},
    {"name": "get-env", "inputSchema": {"type": "object"}},
    {"name": "launch-rockets", "inputSchema": {"type": "object"}},
]
INTENT_RULES = [{"id": "arithmetic", "keywords": ["sum"], "allow": ["get-sum"], "summary": "add numbers"}]
# Fields that differ between any two runs of the same request (see the module's docstring).
UNSHARED = ("id", "ts", "latency_ms")


def answer_of(message: dict[str, Any]) -> dict[str, Any] | None:
    """The tool server's answer to one JSON-RPC message: the same for the same message, always."""
    if "id" not in message:
        return None
    method = message.get("method")
    if method == "initialize":
        result: dict[str, Any] = {"protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "d"}}
    elif method == "tools/list":
        result = {"tools": TOOLS}
    elif method == "tools/call":
        result = {"content": [{"type": "text", "text": f"called {message['params']['name']}"}]}
    else:
        result = {}
    return {"jsonrpc": "2.0", "id": message["id"], "result": result}


def tool_server(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    if headers.get("x-upstream-fails"):
        return 502, {"content-type": "text/plain"}, b"bad gateway"
    if not body:  # the session's GET stream: a short event stream
        return 200, {"content-type": "text/event-stream"}, b"event: message\ndata: {}\n\n"
    parsed = json.loads(body)
    answers = [a for a in map(answer_of, parsed if isinstance(parsed, list) else [parsed]) if a is not None]
    if not answers:
        return 202, {}, b""
    if headers.get("x-answer-as") == "sse":
        events = b"".join(b"event: message\ndata: " + json.dumps(a).encode() + b"\n\n" for a in answers)
        return 200, {"content-type": "text/event-stream"}, events
    out = answers if isinstance(parsed, list) else answers[0]
    return 200, {"content-type": "application/json", "mcp-session-id": SESSION}, json.dumps(out).encode()


@dataclass(frozen=True)
class Exchange:
    """One request, as the client sends it: no session header unless given."""

    name: str
    body: bytes | None
    headers: dict[str, str]
    method: str = "POST"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Pair:
    envoys: dict[str, Envoy]
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    issuer = Issuer.generate()
    revoked = issuer.mint("agent-d", TENANT, tools=["echo", "get-sum", "get-env"])
    tokens = {
        "good": issuer.token("agent-d", TENANT, tools=["echo", "get-sum", "get-env"]),
        "budget": issuer.token("agent-d", TENANT, tools=["echo"], max_calls=2),
        "forged": Issuer.generate().token("agent-d", TENANT, tools=["echo"]),
        "expired": issuer.token("agent-d", TENANT, tools=["echo"], now=int(time.time()) - 7200, ttl=60),
        "revoked": revoked["token"],
        "other_tenant": issuer.token("agent-d", "globex", tools=["echo"]),
    }
    plugin = plugin_config(
        [issuer.public_key],
        {TENANT: tenant_config(DEMO_POLICY.read_text(), intent_rules=INTENT_RULES)},
        revocations=[revoked["jti"]],
        serve_tenants=[TENANT],
    )
    with serve(tool_server) as upstream:
        envoys: dict[str, Envoy] = {}
        try:
            for build in BUILDS:
                config = EnvoyConfig(upstream_port=upstream.port, http_filters=[build.filter(plugin)])
                envoys[build.name] = start_envoy(config, tmp_path_factory.mktemp(f"differential-{build}"))
            yield Pair(envoys, tokens)
        finally:
            for envoy in envoys.values():
                envoy.stop()


def exchanges(tokens: dict[str, str]) -> list[Exchange]:
    def post(name: str, body: Any, token: str | None = "good", **headers: str) -> Exchange:
        sent = {"content-type": "application/json", "accept": ACCEPT, "mcp-session-id": SESSION, **headers}
        if token:
            sent["authorization"] = f"Bearer {tokens[token]}"
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return Exchange(name, raw, sent)

    def bodyless(name: str, method: str, token: str | None) -> Exchange:
        headers = {"accept": "text/event-stream", "mcp-session-id": SESSION}
        if token:
            headers["authorization"] = f"Bearer {tokens[token]}"
        return Exchange(name, None, headers, method)

    return [
        post("initialize", initialize_request()),
        post("notification", notification("notifications/initialized")),
        post("allowed call", tool_call("echo", {"message": "hi"})),
        post("policy denial", tool_call("get-env", {})),
        post("tool outside the token", tool_call("launch-rockets", {})),
        post("no token", tool_call("echo", {"message": "hi"}), token=None),
        post("forged token", tool_call("echo", {"message": "hi"}), token="forged"),
        post("expired token", tool_call("echo", {"message": "hi"}), token="expired"),
        post("revoked token", tool_call("echo", {"message": "hi"}), token="revoked"),
        post("tenant not served", tool_call("echo", {"message": "hi"}), token="other_tenant"),
        post("tenant header mismatch", tool_call("echo", {"message": "hi"}), **{"x-intentgate-tenant": "globex"}),
        post("intent allows", tool_call("get-sum", {"a": 1, "b": 2}), **{"x-intent-prompt": "please sum these"}),
        post("intent forbids", tool_call("echo", {"message": "hi"}), **{"x-intent-prompt": "please sum these"}),
        post("budget 1", tool_call("echo", {"message": "1"}), token="budget"),
        post("budget 2", tool_call("echo", {"message": "2"}), token="budget"),
        post("budget exhausted", tool_call("echo", {"message": "3"}), token="budget"),
        post("not json", b"{not json"),
        post("not JSON-RPC 2.0", b'{"jsonrpc":"1.0","id":1,"method":"ping"}'),
        post("unknown method", request("tools/destroy")),
        post("bad params", b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}'),
        post("serde's private number key", tool_call("echo", {"$serde_json::private::Number": "1"})),
        post(
            "batch",
            [
                tool_call("echo", {"message": "one"}, id=1),
                tool_call("get-env", {}, id=2),
                notification("notifications/progress"),
                request("no/such/method", id=3),
            ],
        ),
        post("tools/list, JSON", request("tools/list", id="list")),
        post("tools/list, event stream", request("tools/list", id="sse"), **{"x-answer-as": "sse"}),
        post("upstream fails", tool_call("echo", {"message": "hi"}), **{"x-upstream-fails": "1"}),
        Exchange("oversized body", padded_tool_call(2 * 1024 * 1024), {
            "content-type": "application/json", "authorization": f"Bearer {tokens['good']}",
        }),
        bodyless("GET without a token", "GET", None),
        bodyless("DELETE without a token", "DELETE", None),
        bodyless("GET with a token", "GET", "good"),
        bodyless("PUT", "PUT", "good"),
    ]


def send(envoy: Envoy, exchange: Exchange) -> Reply:
    with httpx.Client(timeout=15, trust_env=False) as client:
        answer = client.request(exchange.method, envoy.mcp_url, content=exchange.body, headers=exchange.headers)
    kept = {name: answer.headers[name] for name in ("content-type", "www-authenticate") if name in answer.headers}
    return Reply(answer.status_code, kept, answer.content)


def send_non_utf8_header(envoy: Envoy, token: str) -> Reply:
    """A request whose header value is not UTF-8 (httpx would refuse to send it)."""
    body = json.dumps(tool_call("echo", {"message": "x"})).encode()
    head = (
        f"POST /v1/mcp HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    ).encode() + b"X-Note: caf\xe9\r\n\r\n"
    with socket.create_connection((envoy.host, envoy.port), timeout=15) as sock:
        sock.sendall(head + body)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head_part, _, content = raw.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    kept = {k.lower(): v for k, v in headers.items() if k.lower() in ("content-type", "www-authenticate")}
    return Reply(int(lines[0].split()[1]), kept, content)


def audit_events(envoy: Envoy) -> list[dict[str, Any]]:
    return [e for e in envoy.json_log_objects() if e.get("schema_version") and "decision" in e]


def without_unshared(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in UNSHARED}


def wait_for_events(envoy: Envoy, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while len(events := audit_events(envoy)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return events


def test_both_builds_answer_alike_and_audit_alike(pair: Pair) -> None:
    cases: list[tuple[str, Callable[[Envoy], Reply]]] = [
        (exchange.name, lambda envoy, exchange=exchange: send(envoy, exchange)) for exchange in exchanges(pair.tokens)
    ]
    cases.append(("header value not UTF-8", lambda envoy: send_non_utf8_header(envoy, pair.tokens["good"])))
    differences = []
    for name, run in cases:
        before = {build: len(audit_events(envoy)) for build, envoy in pair.envoys.items()}
        replies = {build: run(envoy) for build, envoy in pair.envoys.items()}
        if replies["wasm"] != replies["native"]:
            differences.append(f"{name}: answers differ\n  wasm:   {replies['wasm']}\n  native: {replies['native']}")
        # The next request starts once both builds have written this one's events (one tick at most).
        time.sleep(0.25)
        events = {
            build: [without_unshared(e) for e in audit_events(envoy)[before[build] :]]
            for build, envoy in pair.envoys.items()
        }
        if events["wasm"] != events["native"]:
            differences.append(f"{name}: audit events differ\n  wasm:   {events['wasm']}\n  native: {events['native']}")
    assert not differences, "\n".join(differences)
    counts = {build: len(wait_for_events(envoy, 1)) for build, envoy in pair.envoys.items()}
    assert counts["wasm"] == counts["native"] >= len(cases), counts


def test_the_unshared_fields_are_all_that_differ(pair: Pair) -> None:
    """The comparison above sets aside only what cannot be shared: the same call's events differ in exactly those
    fields, and in nothing else."""
    exchange = exchanges(pair.tokens)[2]
    assert exchange.name == "allowed call"
    before = {build: len(audit_events(envoy)) for build, envoy in pair.envoys.items()}
    for envoy in pair.envoys.values():
        send(envoy, exchange)
    events = {build: wait_for_events(envoy, before[build] + 1)[before[build]] for build, envoy in pair.envoys.items()}
    differing = {k for k in events["wasm"] if events["wasm"][k] != events["native"][k]}
    assert differing <= set(UNSHARED), differing
    assert {"id", "ts"} <= differing, "two runs never share an event id or a timestamp"
